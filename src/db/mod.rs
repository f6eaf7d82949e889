//! The SQLite database of client keys: where it is, how connections are set up, and the
//! embedded migrations (the same `migrations/` the diesel CLI runs).

pub mod keys;
pub mod schema;

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub const DEFAULT_PATH: &str = "./data/incoming_keys.db";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the folder for {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error("cannot open the key database {path}: {source}")]
    Open { path: PathBuf, source: diesel::ConnectionError },
    #[error("cannot prepare the key database {path}: {message}")]
    Setup { path: PathBuf, message: String },
    #[error("key database error: {0}")]
    Query(#[from] diesel::result::Error),
}

/// `INCOMING_KEY_DB`, else `DATABASE_URL` (what the diesel CLI reads), else the default.
pub fn path_from_env(lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    let set = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
    let raw = set("INCOMING_KEY_DB").or_else(|| set("DATABASE_URL")).unwrap_or_else(|| DEFAULT_PATH.to_owned());
    let raw = raw.trim();
    PathBuf::from(raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("file:")).unwrap_or(raw))
}

/// Opens the database, creating it and its folder on first use, and brings the schema up to
/// date. WAL and a busy timeout let the CLI write while a server runs.
pub fn open(path: &Path) -> Result<SqliteConnection, DbError> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|source| DbError::Folder { path: path.to_owned(), source })?;
    }
    let url = path.to_string_lossy();
    let mut conn =
        SqliteConnection::establish(&url).map_err(|source| DbError::Open { path: path.to_owned(), source })?;
    let setup = |message: String| DbError::Setup { path: path.to_owned(), message };
    conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(|e| setup(e.to_string()))?;
    conn.run_pending_migrations(MIGRATIONS).map_err(|e| setup(e.to_string()))?;
    Ok(conn)
}
