//! The SQLite database of client keys: where it is, how connections are set up, and the
//! embedded migrations (the same `migrations/` the diesel CLI runs).

pub mod keys;
pub mod schema;

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
    #[error("there is no key database at {0} (create it with `glm-proxy keys add NAME`, or name another with --db)")]
    Missing(PathBuf),
}

/// Where the key database is: `DATABASE_URL` (what the diesel CLI reads), else
/// `INCOMING_KEY_DB`, else the default. (The CLI's `--db` comes before all of them.)
pub fn path_from_env(lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    let set = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
    let raw = set("DATABASE_URL").or_else(|| set("INCOMING_KEY_DB")).unwrap_or_else(|| DEFAULT_PATH.to_owned());
    as_path(&raw)
}

/// A warning when `DATABASE_URL` and `INCOMING_KEY_DB` are both set and name different files:
/// the diesel CLI and the proxy would otherwise quietly use different databases.
pub fn disagreement(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
    let (url, incoming) = (set("DATABASE_URL")?, set("INCOMING_KEY_DB")?);
    (as_path(&url) != as_path(&incoming)).then(|| {
        format!("DATABASE_URL ({url}) and INCOMING_KEY_DB ({incoming}) name different databases; DATABASE_URL is used")
    })
}

fn as_path(raw: &str) -> PathBuf {
    let raw = raw.trim();
    PathBuf::from(raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("file:")).unwrap_or(raw))
}

/// Opens a database that must exist already: only `keys add` and the server create one.
pub fn open_existing(path: &Path) -> Result<SqliteConnection, DbError> {
    if !path.is_file() {
        return Err(DbError::Missing(path.to_owned()));
    }
    open(path)
}

/// Opens the database, creating it and its folder on first use, and brings the schema up to
/// date. WAL and a busy timeout let the CLI write while a server runs.
pub fn open(path: &Path) -> Result<SqliteConnection, DbError> {
    let folder_error = |source| DbError::Folder { path: path.to_owned(), source };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder).map_err(folder_error)?;
    }
    // Key hashes are the proxy user's alone; SQLite gives its journal files the same mode.
    if !path.exists() {
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(folder_error)?;
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
