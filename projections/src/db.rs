//! The read database: opening it through sqlx's `Any` driver and applying
//! the read-model migrations.
//!
//! One portable schema (`projections/migrations/`) serves SQLite (the
//! embedded default) and PostgreSQL. Everything else in this crate talks to
//! an [`AnyPool`] with `$1, $2…` placeholders and the types both databases
//! share (`i64`, `String`, JSON as text, timestamps as RFC 3339 text).

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

use crate::ProjectionError;

/// The read-model migrations, embedded at build time (`build.rs` reruns the
/// build when one changes).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite statement waits for another connection's write lock
/// before failing with `SQLITE_BUSY`. Projector batches are short, so this
/// only matters under heavy contention (a rebuild beside a live runtime).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path` (or `sqlite::memory:`).
    Sqlite,
    /// `postgres://…` / `postgresql://…`.
    Postgres,
}

impl Backend {
    /// The backend of an open connection.
    pub fn of(conn: &AnyConnection) -> Backend {
        // The Any driver names its backends "SQLite" and "PostgreSQL".
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// The statement that opens a projector batch. SQLite's `BEGIN
    /// IMMEDIATE` takes the write lock up front: a deferred transaction that
    /// read first could not upgrade its lock after another projector's
    /// commit (`SQLITE_BUSY_SNAPSHOT`, which `busy_timeout` does not wait
    /// out), so concurrent batches queue instead of failing.
    pub fn begin_statement(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }
}

/// A parsed read-database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    backend: Backend,
    /// The URL handed to sqlx.
    url: String,
    /// An in-memory SQLite database lives only as long as its one connection.
    in_memory: bool,
}

fn parse(url: &str) -> Result<Target, ProjectionError> {
    // The store crate reads every database URL's scheme; of the schemes it
    // knows, a read database may use SQLite's and PostgreSQL's.
    use basketry_store::Backend as Scheme;
    match Scheme::from_url(url) {
        Ok(Scheme::Sqlite) => {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            // `mode=rwc` makes sqlx create the file when it is missing; a
            // URL that already says which mode it wants keeps it.
            let url = if in_memory || url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            Ok(Target {
                backend: Backend::Sqlite,
                url,
                in_memory,
            })
        }
        Ok(Scheme::Postgres) => Ok(Target {
            backend: Backend::Postgres,
            url: url.to_owned(),
            in_memory: false,
        }),
        _ => Err(ProjectionError::InvalidUrl(
            "read database URL must start with sqlite:// or postgres://".into(),
        )),
    }
}

/// Opens the read database named by `url` and brings its schema up to date.
///
/// * `sqlite://path/to/read.db` — created when missing; WAL journal,
///   `synchronous=FULL` (a committed batch and its checkpoint survive a
///   power cut) and a busy timeout on every connection. `sqlite::memory:`
///   gives a private in-memory database on a single connection (for audits
///   that rebuild into a scratch database).
/// * `postgres://…` / `postgresql://…`.
///
/// The migrations run with `ignore_missing`, because the command API keeps
/// its idempotency tables' migrations (and, on PostgreSQL, the event store
/// may keep its own) in the same database and the same `_sqlx_migrations`
/// table.
pub async fn open(url: &str) -> Result<AnyPool, ProjectionError> {
    sqlx::any::install_default_drivers();
    let target = parse(url)?;
    if target.backend == Backend::Sqlite && !target.in_memory {
        // Owner-only file (and so WAL files) before SQLite creates it.
        let options =
            <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&target.url)?;
        basketry_store::sqlite::create_private_file(&options).map_err(sqlx::Error::Io)?;
        // WAL is a property of the file, set once; switching needs an
        // exclusive lock that busy_timeout cannot wait for, so it is done
        // here on a lone connection rather than by every pooled one.
        let mut conn = AnyConnection::connect(&target.url).await?;
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.close().await?;
    }
    let options = match (target.backend, target.in_memory) {
        // Each connection to `:memory:` is a database of its own: keep
        // exactly one, forever.
        (Backend::Sqlite, true) => pool_options()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None),
        // Projectors queue on SQLite's single write lock anyway; a few
        // connections let status reads run beside them.
        (Backend::Sqlite, false) => pool_options().max_connections(SQLITE_CONNECTIONS),
        (Backend::Postgres, _) => pool_options().max_connections(POSTGRES_CONNECTIONS),
    };
    let pool = options.connect(&target.url).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Connections of a read-database pool on a SQLite file ([`open`],
/// [`open_typed`]).
const SQLITE_CONNECTIONS: u32 = 8;

/// Connections of a read-database pool on PostgreSQL ([`open`],
/// [`open_typed`]).
const POSTGRES_CONNECTIONS: u32 = 10;

/// Connections of the pool [`open_background`] opens.
pub const BACKGROUND_CONNECTIONS: u32 = 3;

/// A second, small pool on the read database at `url` (already opened by
/// [`open`]) for the work that must not queue behind requests: the
/// projectors, the projector lease and the key-usage flushes
/// (`docs/adr/0013-back-pressure-timeouts-and-pools.md`). An in-memory
/// SQLite database exists only on its one connection, so `main` itself is
/// returned for one.
pub async fn open_background(url: &str, main: &AnyPool) -> Result<AnyPool, ProjectionError> {
    sqlx::any::install_default_drivers();
    let target = parse(url)?;
    if target.in_memory {
        return Ok(main.clone());
    }
    Ok(pool_options()
        .max_connections(BACKGROUND_CONNECTIONS)
        .connect(&target.url)
        .await?)
}

/// What every connection of a read-database pool is set up with.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new().after_connect(|conn, _meta| {
        Box::pin(async move {
            if Backend::of(conn) == Backend::Sqlite {
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute(
                    format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis()).as_str(),
                )
                .await?;
            }
            Ok(())
        })
    })
}

/// Applies the read-model migrations to `pool`, tolerating migrations of
/// other components recorded in the same database.
pub async fn migrate(pool: &AnyPool) -> Result<(), ProjectionError> {
    let migrator = basketry_store::sharing_migrator(&MIGRATOR).await?;
    migrator.run(pool).await?;
    Ok(())
}

/// The read database through sqlx's typed drivers: what the hot read paths
/// use instead of [`AnyPool`] (no per-value conversion through `Any`,
/// borrowed column values, each engine's own statement cache). Opened by
/// [`open_typed`] beside the pool of [`open`], on the same database.
#[derive(Clone)]
pub enum ReadPool {
    /// `sqlite://…`.
    Sqlite(sqlx::SqlitePool),
    /// `postgres://…` / `postgresql://…`.
    Postgres(sqlx::PgPool),
}

impl ReadPool {
    /// Which database the pool talks to.
    pub fn backend(&self) -> Backend {
        match self {
            ReadPool::Sqlite(_) => Backend::Sqlite,
            ReadPool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        match self {
            ReadPool::Sqlite(pool) => pool.close().await,
            ReadPool::Postgres(pool) => pool.close().await,
        }
    }
}

impl std::fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadPool::Sqlite(_) => f.write_str("ReadPool::Sqlite"),
            ReadPool::Postgres(_) => f.write_str("ReadPool::Postgres"),
        }
    }
}

/// Opens a typed pool ([`ReadPool`]) on the read database named by `url`,
/// which [`open`] has already opened and migrated, with the same connection
/// settings (busy timeout and `synchronous=FULL` on SQLite) and as many
/// connections.
///
/// An in-memory SQLite database is private to its one connection, so a
/// second pool could never see the rows the projectors write there: such a
/// URL is refused.
pub async fn open_typed(url: &str) -> Result<ReadPool, ProjectionError> {
    use std::str::FromStr;

    let target = parse(url)?;
    if target.in_memory {
        return Err(ProjectionError::InvalidUrl(
            "the read database must be a file or PostgreSQL, not in-memory SQLite".into(),
        ));
    }
    match target.backend {
        Backend::Sqlite => {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&target.url)?
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
            Ok(ReadPool::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(SQLITE_CONNECTIONS)
                    .connect_with(options)
                    .await?,
            ))
        }
        Backend::Postgres => Ok(ReadPool::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(POSTGRES_CONNECTIONS)
                .connect(&target.url)
                .await?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_missing_files_unless_told_otherwise() {
        let t = parse("sqlite://data/read.db").unwrap();
        assert_eq!(t.backend, Backend::Sqlite);
        assert_eq!(t.url, "sqlite://data/read.db?mode=rwc");
        assert_eq!(
            parse("sqlite://read.db?cache=shared").unwrap().url,
            "sqlite://read.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            parse("sqlite://read.db?mode=ro").unwrap().url,
            "sqlite://read.db?mode=ro"
        );
        assert!(parse("sqlite::memory:").unwrap().in_memory);
    }

    #[tokio::test]
    async fn a_typed_pool_on_in_memory_sqlite_is_refused() {
        // It would be a database of its own, never the projectors' one.
        for url in ["sqlite::memory:", "sqlite://read.db?mode=memory"] {
            assert!(
                matches!(open_typed(url).await, Err(ProjectionError::InvalidUrl(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn postgres_urls_pass_through_and_others_are_refused() {
        for url in ["postgres://u@h/db", "postgresql://u@h/db"] {
            let t = parse(url).unwrap();
            assert_eq!((t.backend, t.url.as_str()), (Backend::Postgres, url));
        }
        assert!(matches!(
            parse("mysql://x"),
            Err(ProjectionError::InvalidUrl(_))
        ));
    }
}
