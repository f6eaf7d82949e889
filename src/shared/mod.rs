//! Several replicas, one proxy: what replicas share about the Cerebras keys on Redis
//! (`REDIS_URL`), and how. The actor that does it is `actors::key_sync`.

pub mod events;
pub mod redis_script;
