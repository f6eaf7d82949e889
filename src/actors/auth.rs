//! `AuthActor`: the client-key database, run on its own thread (a `SyncArbiter`) so that the
//! database's blocking calls never stall the async workers.

use actix::prelude::*;

use super::supervision::{guarded, ActorFault, Named};
use crate::db::keys::{self, ApiKey, TokenUsage, Usage};
use crate::db::{ConnectionPool, DbError, KeyDb};
use crate::policy::limits::budget::Period;

/// Looks up one key by its hash: for a key the in-memory cache does not know yet.
#[derive(Message)]
#[rtype(result = "Result<Option<ApiKey>, ActorFault>")]
pub struct Lookup {
    pub key_hash: String,
}

/// Every key, to refresh the cache (revocations and limits from the CLI arrive this way), and
/// this month's daily rows of the keys with a budget.
#[derive(Message)]
#[rtype(result = "Result<Loaded, ActorFault>")]
pub struct LoadAll;

pub struct Loaded {
    pub keys: Vec<ApiKey>,
    pub spent: Vec<TokenUsage>,
}

/// Adds requests and tokens counted in memory to the tables, in one transaction: a failed
/// flush writes nothing, and is tried again whole.
#[derive(Message)]
#[rtype(result = "Result<(), ActorFault>")]
pub struct FlushUsage {
    pub requests: Vec<Usage>,
    pub tokens: Vec<TokenUsage>,
}

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
    type Result = Result<Loaded, ActorFault>;

    fn handle(&mut self, _: LoadAll, ctx: &mut SyncContext<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| {
            this.run(|conn| {
                let keys = keys::all(conn)?;
                let budgeted: Vec<i32> = keys.iter().filter(|k| k.has_budget()).map(|k| k.id).collect();
                let spent = match budgeted.is_empty() {
                    true => Vec::new(),
                    false => keys::token_usage_since(conn, Period::Month.start(chrono::Utc::now()), Some(&budgeted))?,
                };
                Ok(Loaded { keys, spent })
            })
        })?
    }
}

impl Handler<FlushUsage> for AuthActor {
    type Result = Result<(), ActorFault>;

    fn handle(&mut self, msg: FlushUsage, ctx: &mut SyncContext<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.run(|conn| Ok(keys::add_usage(conn, &msg.requests, &msg.tokens)?)))?
    }
}

/// Work of the admin API on the database: the same operations as the `keys` CLI, on this
/// actor's thread. Its error is one line for the client, never the database's own words.
pub struct WithDb<R: Send + 'static>(pub Box<dyn FnOnce(&mut KeyDb) -> R + Send>);

impl<R: Send + 'static> Message for WithDb<R> {
    type Result = Result<R, ActorFault>;
}

impl<R: Send + 'static> Handler<WithDb<R>> for AuthActor {
    type Result = Result<R, ActorFault>;

    fn handle(&mut self, msg: WithDb<R>, ctx: &mut SyncContext<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.run(|conn| Ok(msg.0(conn))))?
    }
}
