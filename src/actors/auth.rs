//! `AuthActor`: the client-key database, run on its own thread (a `SyncArbiter`) so that
//! SQLite's blocking calls never stall the async workers.

use std::path::PathBuf;

use actix::prelude::*;
use diesel::SqliteConnection;

use super::supervision::{guarded, ActorFault, Named};
use crate::db::keys::{self, ApiKey, Usage};
use crate::db::{self, DbError};

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
    path: PathBuf,
    conn: Option<SqliteConnection>,
}

impl AuthActor {
    pub fn new(path: PathBuf) -> Self {
        Self { path, conn: None }
    }

    /// Runs a query on the connection, opening it first if needed. After an error the
    /// connection is dropped, so the next message starts from a fresh one.
    fn run<T>(&mut self, query: impl FnOnce(&mut SqliteConnection) -> Result<T, DbError>) -> Result<T, ActorFault> {
        let conn = match self.conn.take() {
            Some(conn) => Ok(conn),
            None => db::open(&self.path),
        };
        let result = conn.and_then(|mut conn| query(&mut conn).map(|value| (value, conn)));
        match result {
            Ok((value, conn)) => {
                self.conn = Some(conn);
                Ok(value)
            }
            Err(error) => {
                log::error!("event=key_database_error error={error}");
                Err(ActorFault(Self::NAME))
            }
        }
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
