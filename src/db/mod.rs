//! The database of client keys: SQLite by default (a file beside the proxy), PostgreSQL for
//! several replicas (`DATABASE_URL=postgres://…`). Where it is, how connections are set up and
//! pooled, and the embedded migrations of each backend (the directories the diesel CLI runs).

pub mod clients;
pub mod keys;
pub mod schema;

use std::fmt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_postgres");

pub const DEFAULT_PATH: &str = "./data/incoming_keys.db";

/// A connection to either backend; the queries in `keys` run on both.
#[derive(diesel::MultiConnection)]
pub enum KeyDb {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Connections shared by the proxy's database threads: broken ones are replaced, so a
/// database that went away and came back is used again without a restart.
pub type ConnectionPool = Pool<ConnectionManager<KeyDb>>;

/// Where the key database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// A URL names PostgreSQL; anything else (a path, `sqlite://path`, `file:path`) SQLite.
    pub fn parse(raw: &str) -> Self {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Self::Postgres(raw.to_owned());
        }
        Self::Sqlite(PathBuf::from(raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("file:")).unwrap_or(raw)))
    }

    /// The SQLite file's folder, which the proxy must be able to write.
    pub fn sqlite_folder(&self) -> Option<PathBuf> {
        match self {
            Self::Sqlite(path) => Some(
                path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from),
            ),
            Self::Postgres(_) => None,
        }
    }
}

/// The path, or the URL without its password: what logs and errors may show.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the folder for {location}: {source}")]
    Folder { location: Location, source: std::io::Error },
    #[error("cannot open the key database {location}: {message}")]
    Open { location: Location, message: String },
    #[error("cannot prepare the key database {location}: {message}")]
    Setup { location: Location, message: String },
    #[error("key database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("there is no key database at {0} (create it with `glm-proxy keys add NAME`, or name another with --db)")]
    Missing(Location),
}

/// Where the key database is: `DATABASE_URL` (what the diesel CLI reads), else
/// `INCOMING_KEY_DB`, else the default. (The CLI's `--db` comes before all of them.)
pub fn location_from_env(lookup: impl Fn(&str) -> Option<String>) -> Location {
    let set = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
    let raw = set("DATABASE_URL").or_else(|| set("INCOMING_KEY_DB")).unwrap_or_else(|| DEFAULT_PATH.to_owned());
    Location::parse(&raw)
}

/// A warning when `DATABASE_URL` and `INCOMING_KEY_DB` are both set and name different
/// databases: the diesel CLI and the proxy would otherwise quietly use different ones.
pub fn disagreement(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
    let (url, incoming) = (Location::parse(&set("DATABASE_URL")?), Location::parse(&set("INCOMING_KEY_DB")?));
    (url != incoming).then(|| {
        format!("DATABASE_URL ({url}) and INCOMING_KEY_DB ({incoming}) name different databases; DATABASE_URL is used")
    })
}

/// Opens a database that must exist already: only `keys add` and the server create a SQLite
/// file (a PostgreSQL database is the operator's to create).
pub fn open_existing(location: &Location) -> Result<KeyDb, DbError> {
    if let Location::Sqlite(path) = location {
        if !path.is_file() {
            return Err(DbError::Missing(location.clone()));
        }
    }
    open(location)
}

/// Opens the database (creating a SQLite file and its folder on first use) and brings its
/// schema up to date.
pub fn open(location: &Location) -> Result<KeyDb, DbError> {
    let setup = |message: String| DbError::Setup { location: location.clone(), message };
    let mut conn = connect(location)?;
    let migrations = match location {
        Location::Sqlite(_) => SQLITE_MIGRATIONS,
        Location::Postgres(_) => POSTGRES_MIGRATIONS,
    };
    let migrated = match &mut conn {
        KeyDb::Sqlite(conn) => conn.run_pending_migrations(migrations).map(drop),
        KeyDb::Postgres(conn) => conn.run_pending_migrations(migrations).map(drop),
    };
    migrated.map_err(|e| setup(e.to_string()))?;
    Ok(conn)
}

/// The pool the proxy's database threads share, for a database `open` has prepared.
pub fn pool(location: &Location) -> ConnectionPool {
    let url = match location {
        Location::Sqlite(path) => path.to_string_lossy().into_owned(),
        Location::Postgres(url) => url.clone(),
    };
    Pool::builder()
        .max_size(4)
        .min_idle(Some(1))
        // A lookup must not wait long for a database that is away: the cached keys answer meanwhile.
        .connection_timeout(Duration::from_secs(2))
        .connection_customizer(Box::new(SqliteSettings))
        .build_unchecked(ConnectionManager::new(url))
}

/// One connection, set up for its backend.
fn connect(location: &Location) -> Result<KeyDb, DbError> {
    let open_error = |message: String| DbError::Open { location: location.clone(), message };
    match location {
        Location::Postgres(url) => {
            // libpq's own messages can quote the URL: only the masked location is shown.
            PgConnection::establish(url).map(KeyDb::Postgres).map_err(|e| open_error(masked(&e.to_string(), url)))
        }
        Location::Sqlite(path) => {
            let folder_error = |source| DbError::Folder { location: location.clone(), source };
            if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder).map_err(folder_error)?;
            }
            // Key hashes are the proxy user's alone; SQLite gives its journal files the same mode.
            if !path.exists() {
                std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(folder_error)?;
            }
            let mut conn =
                SqliteConnection::establish(&path.to_string_lossy()).map_err(|e| open_error(e.to_string()))?;
            sqlite_settings(&mut conn).map_err(|e| open_error(e.to_string()))?;
            Ok(KeyDb::Sqlite(conn))
        }
    }
}

fn masked(message: &str, url: &str) -> String {
    message.replace(url, &without_password(url))
}

/// WAL and a busy timeout let the CLI write while a server runs.
fn sqlite_settings(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
}

#[derive(Debug)]
struct SqliteSettings;

impl CustomizeConnection<KeyDb, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut KeyDb) -> Result<(), diesel::r2d2::Error> {
        match conn {
            KeyDb::Sqlite(conn) => sqlite_settings(conn).map_err(diesel::r2d2::Error::QueryError),
            KeyDb::Postgres(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_postgres_and_everything_else_sqlite() {
        assert_eq!(Location::parse("postgres://u@h/db"), Location::Postgres("postgres://u@h/db".into()));
        assert_eq!(Location::parse(" postgresql://h/db "), Location::Postgres("postgresql://h/db".into()));
        assert_eq!(Location::parse("sqlite://./k.db"), Location::Sqlite("./k.db".into()));
        assert_eq!(Location::parse("./data/k.db"), Location::Sqlite("./data/k.db".into()));
    }

    #[test]
    fn a_password_is_never_shown() {
        let location = Location::parse("postgres://proxy:s3cret@db.internal:5432/keys");
        assert_eq!(location.to_string(), "postgres://proxy:***@db.internal:5432/keys");
        assert_eq!(Location::parse("postgres://proxy@db/keys").to_string(), "postgres://proxy@db/keys");
        assert_eq!(masked("bad url postgres://a:b@h/d", "postgres://a:b@h/d"), "bad url postgres://a:***@h/d");
    }
}
