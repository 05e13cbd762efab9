//! SQLite reads on the request's own thread, for the hot read paths
//! (`docs/adr/0016-data-path.md`).
//!
//! sqlx runs every SQLite connection on a worker thread of its own: a
//! statement is sent there and every row comes back through a channel, so
//! a page of 21 rows costs a couple of dozen thread wake-ups. On two cores
//! that hand-off, not SQLite, was most of a browse request's time. Here a
//! page is read by `rusqlite` (which links the same `libsqlite3-sys` as
//! sqlx, so the process holds one SQLite) on a connection taken from a
//! small idle list, on the thread that serves the request, and the rows are
//! handed to the caller as [`Columns`] borrowed from SQLite's own buffers.
//!
//! Running a statement inline blocks the request's thread while it runs.
//! That is bounded: the statements are single keyset-paged or by-key
//! `SELECT`s over indexes (a page is at most 101 rows), and in WAL mode a
//! reader never waits for the writer (the busy timeout only covers the rare
//! recovery of the WAL index). Connections are opened `query_only`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use basketry_projections::db::ReadPool;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::error::QueryError;
use crate::rows::{Arg, Columns};

/// Idle connections kept for reuse; more are opened when requests overlap
/// and closed when returned past this.
const MAX_IDLE: usize = 8;

/// Prepared statements kept per connection (the statement texts are the
/// few filter combinations of a handful of routes).
const STATEMENT_CACHE: usize = 64;

/// As the read database's other connections (`projections/src/db.rs`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a SQLite read database on the calling thread.
#[derive(Debug)]
pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// The typed pool on the same file: once it is closed (the process is
    /// shutting down), so is the reader.
    pool: sqlx::SqlitePool,
}

impl SqliteReader {
    /// A reader of the file `pool` is open on; `None` for PostgreSQL and
    /// for an in-memory database (which only its own pool can reach).
    pub fn of(pool: &ReadPool) -> Option<Self> {
        match pool {
            ReadPool::Sqlite(pool) => {
                let path = pool.connect_options().get_filename().to_path_buf();
                let name = path.to_string_lossy();
                if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
                    return None;
                }
                Some(Self {
                    path,
                    idle: Mutex::new(Vec::new()),
                    pool: pool.clone(),
                })
            }
            ReadPool::Postgres(_) => None,
        }
    }

    fn open(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    /// Runs `sql` with `args` bound to `$1…$n` (numbered by first
    /// appearance, as [`crate::rows::Sql`] writes them) and hands each row
    /// to `each`, in order.
    pub fn read_each(
        &self,
        sql: &str,
        args: &[Arg],
        each: &mut dyn FnMut(&dyn Columns) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        if self.pool.is_closed() {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
            return Err(sqlx::Error::PoolClosed.into());
        }
        // A poisoned lock only means a panic while pushing or popping.
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = run(&conn, sql, args, each);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }
}

fn run(
    conn: &Connection,
    sql: &str,
    args: &[Arg],
    each: &mut dyn FnMut(&dyn Columns) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let mut statement = conn.prepare_cached(sql)?;
    for (i, arg) in args.iter().enumerate() {
        match arg {
            Arg::Int(v) => statement.raw_bind_parameter(i + 1, *v)?,
            Arg::Text(v) => statement.raw_bind_parameter(i + 1, v.as_str())?,
        }
    }
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next()? {
        each(&Row(row))?;
    }
    Ok(())
}

/// A `rusqlite` row as [`Columns`].
struct Row<'a, 's>(&'a rusqlite::Row<'s>);

impl Row<'_, '_> {
    fn value(&self, i: usize) -> Result<ValueRef<'_>, QueryError> {
        Ok(self.0.get_ref(i)?)
    }
}

impl Columns for Row<'_, '_> {
    fn str(&self, i: usize) -> Result<&str, QueryError> {
        self.opt_str(i)?
            .ok_or_else(|| QueryError::Corrupt(format!("column {i} is NULL")))
    }

    fn opt_str(&self, i: usize) -> Result<Option<&str>, QueryError> {
        match self.value(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|e| QueryError::Corrupt(format!("column {i} is not UTF-8: {e}"))),
            _ => Err(QueryError::Corrupt(format!("column {i} is not text"))),
        }
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError> {
        match self.value(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            _ => Err(QueryError::Corrupt(format!("column {i} is not an integer"))),
        }
    }
}
