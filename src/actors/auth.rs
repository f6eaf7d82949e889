//! `AuthActor`: the client-key database, run on its own thread (a `SyncArbiter`) so that the
//! database's blocking calls never stall the async workers.

use actix::prelude::*;

use super::supervision::{guarded, ActorFault, Named};
use crate::db::keys::{self, ApiKey, Usage};
use crate::db::{ConnectionPool, DbError, KeyDb};

/// Looks up one key by its hash: for a key the in-memory cache does not know yet.
#[derive(Message)]
#[rtype(result = "Result<Option<ApiKey>, ActorFault>")]
pub struct Lookup {
    pub key_hash: String,
}

/// Every key, to refresh the cache (revocations from the CLI arrive this way).
#[derive(Message)]
#[rtype(result = "Result<Vec<ApiKey>, ActorFault>")]
pub struct LoadAll;

/// Adds requests counted in memory to the table.
#[derive(Message)]
#[rtype(result = "Result<(), ActorFault>")]
pub struct FlushUsage(pub Vec<Usage>);

pub struct AuthActor {
    pool: ConnectionPool,
}

impl AuthActor {
    pub fn new(pool: ConnectionPool) -> Self {
        Self { pool }
    }

    /// Runs a query on a pooled connection; the pool replaces connections that broke.
    fn run<T>(&mut self, query: impl FnOnce(&mut KeyDb) -> Result<T, DbError>) -> Result<T, ActorFault> {
        let result = match self.pool.get() {
            Ok(mut conn) => query(&mut conn).map_err(|error| error.to_string()),
            Err(error) => Err(format!("no connection: {error}")),
        };
        result.map_err(|error| {
            log::error!("event=key_database_error error={error:?}");
            ActorFault(Self::NAME)
        })
    }
}

impl Named for AuthActor {
    const NAME: &'static str = "key database";
}

impl Actor for AuthActor {
    type Context = SyncContext<Self>;
}

impl Handler<Lookup> for AuthActor {
    type Result = Result<Option<ApiKey>, ActorFault>;

    fn handle(&mut self, msg: Lookup, ctx: &mut SyncContext<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.run(|conn| Ok(keys::find_by_hash(conn, &msg.key_hash)?)))?
    }
}

impl Handler<LoadAll> for AuthActor {
    type Result = Result<Vec<ApiKey>, ActorFault>;

    fn handle(&mut self, _: LoadAll, ctx: &mut SyncContext<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.run(|conn| Ok(keys::all(conn)?)))?
    }
}

impl Handler<FlushUsage> for AuthActor {
    type Result = Result<(), ActorFault>;

    fn handle(&mut self, msg: FlushUsage, ctx: &mut SyncContext<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.run(|conn| Ok(keys::add_usage(conn, &msg.0)?)))?
    }
}
