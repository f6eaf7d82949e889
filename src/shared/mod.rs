//! Several replicas, one proxy: what replicas share about their key pools on Redis
//! (`REDIS_URL`), and how. The actor that does it is `actors::key_sync`.

pub mod changes;
pub mod redis_script;
