//! Portable SQL: a small statement builder that numbers `$n` placeholders,
//! run through sqlx's typed SQLite and PostgreSQL drivers ([`ReadPool`],
//! [`Columns`]) on the hot paths and through its `Any` driver elsewhere,
//! and readers for read-model columns.
//!
//! Values are only ever `i64` and `String` (the schema's `BIGINT`/`INTEGER`
//! and `TEXT`), which both SQLite and PostgreSQL carry through `Any`
//! unchanged. JSON columns are text and are parsed here; a column that does
//! not parse is a projector bug, answered 500 without detail.

use basketry_projections::db::ReadPool;
use serde_json::Value;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Any, Column, Postgres, Row, Sqlite, TypeInfo};

use crate::error::QueryError;
use crate::QueryState;

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An integer.
    Int(i64),
    /// A text.
    Text(String),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

/// A statement being built: text with `$1…$n` and the values they stand
/// for, in order.
#[derive(Debug, Clone)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    /// Starts a statement.
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text (never a value: values go through [`Sql::bind`]).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        let n = self.args.len();
        self.text.push_str(&format!("${n}"));
        self
    }

    /// The statement's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How many values are bound.
    pub fn arg_count(&self) -> usize {
        self.args.len()
    }

    /// The sqlx query, values bound.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut query = sqlx::query(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }
}

impl Sql {
    /// The statement for sqlx's typed SQLite driver, values bound. SQLite
    /// reads `$1…$n` as parameters numbered by first appearance, which is
    /// their order here (a placeholder is never reused).
    pub fn sqlite(&self) -> Query<'_, Sqlite, SqliteArguments<'_>> {
        let mut query = sqlx::query(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.as_str()),
            };
        }
        query
    }

    /// The statement for sqlx's typed PostgreSQL driver, values bound.
    pub fn postgres(&self) -> Query<'_, Postgres, PgArguments> {
        let mut query = sqlx::query(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.as_str()),
            };
        }
        query
    }

    /// Runs the statement and hands each row to `each`, in order, as
    /// [`Columns`] (values borrowed from the row): on SQLite on the
    /// request's thread ([`crate::sqlite_reader`]) when the state has a
    /// reader, else through sqlx's typed driver ([`QueryState::read`]).
    pub async fn read_each(
        &self,
        state: &QueryState,
        mut each: impl FnMut(&dyn Columns) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        if let Some(reader) = &state.sqlite_reader {
            return reader.read_each(&self.text, &self.args, &mut each);
        }
        match &state.read {
            ReadPool::Sqlite(pool) => {
                for row in &self.sqlite().fetch_all(pool).await? {
                    each(row)?;
                }
            }
            ReadPool::Postgres(pool) => {
                for row in &self.postgres().fetch_all(pool).await? {
                    each(row)?;
                }
            }
        }
        Ok(())
    }

    /// Runs the statement and maps its first row, if any.
    pub async fn read_optional<T>(
        &self,
        state: &QueryState,
        read: impl FnOnce(&dyn Columns) -> Result<T, QueryError>,
    ) -> Result<Option<T>, QueryError> {
        let mut read = Some(read);
        let mut out = None;
        self.read_each(state, |row| {
            if let Some(read) = read.take() {
                out = Some(read(row)?);
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }
}

/// A row of sqlx's typed SQLite or PostgreSQL driver, read by column
/// position: text is borrowed from the row (no copy), integers are `i64`
/// whichever integer type the column has (`INTEGER` is 32-bit on
/// PostgreSQL).
pub trait Columns {
    /// A `TEXT NOT NULL` column.
    fn str(&self, i: usize) -> Result<&str, QueryError>;
    /// A nullable `TEXT` column.
    fn opt_str(&self, i: usize) -> Result<Option<&str>, QueryError>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError>;
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64, QueryError> {
        self.opt_int(i)?
            .ok_or_else(|| QueryError::Corrupt(format!("column {i} is NULL")))
    }
    /// A 0/1 integer column as a boolean.
    fn flag(&self, i: usize) -> Result<bool, QueryError> {
        Ok(self.int(i)? != 0)
    }
}

impl Columns for SqliteRow {
    fn str(&self, i: usize) -> Result<&str, QueryError> {
        Ok(self.try_get::<&str, _>(i)?)
    }

    fn opt_str(&self, i: usize) -> Result<Option<&str>, QueryError> {
        Ok(self.try_get::<Option<&str>, _>(i)?)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError> {
        Ok(self.try_get::<Option<i64>, _>(i)?)
    }
}

impl Columns for PgRow {
    fn str(&self, i: usize) -> Result<&str, QueryError> {
        Ok(self.try_get::<&str, _>(i)?)
    }

    fn opt_str(&self, i: usize) -> Result<Option<&str>, QueryError> {
        Ok(self.try_get::<Option<&str>, _>(i)?)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError> {
        // The portable schema's INTEGER columns (0/1 flags) are INT4 here.
        let four = matches!(self.try_column(i)?.type_info().name(), "INT4" | "INT2");
        if four {
            Ok(self.try_get::<Option<i32>, _>(i)?.map(i64::from))
        } else {
            Ok(self.try_get::<Option<i64>, _>(i)?)
        }
    }
}

/// Escapes `%`, `_` and the escape character itself for a `LIKE … ESCAPE
/// '\'` pattern, so a search for `50%` matches the text `50%` only.
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `TEXT NOT NULL` column.
pub fn text(row: &AnyRow, column: &str) -> Result<String, QueryError> {
    Ok(row.try_get::<String, _>(column)?)
}

/// A nullable `TEXT` column.
pub fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, QueryError> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

/// An integer column (`BIGINT` or `INTEGER`).
pub fn int(row: &AnyRow, column: &str) -> Result<i64, QueryError> {
    Ok(row.try_get::<i64, _>(column)?)
}

/// A nullable integer column.
pub fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>, QueryError> {
    Ok(row.try_get::<Option<i64>, _>(column)?)
}

/// A 0/1 integer column as a boolean.
pub fn flag(row: &AnyRow, column: &str) -> Result<bool, QueryError> {
    Ok(int(row, column)? != 0)
}

/// A JSON text column, parsed.
pub fn json(row: &AnyRow, column: &str) -> Result<Value, QueryError> {
    parse_json(column, &text(row, column)?)
}

/// A nullable JSON text column, parsed (`None` for SQL NULL).
pub fn opt_json(row: &AnyRow, column: &str) -> Result<Option<Value>, QueryError> {
    opt_text(row, column)?
        .map(|t| parse_json(column, &t))
        .transpose()
}

/// JSON text of `column`, parsed; a column that does not parse is a
/// projector bug (500 without detail).
pub fn parse_json(column: &str, text: &str) -> Result<Value, QueryError> {
    serde_json::from_str(text)
        .map_err(|e| QueryError::Corrupt(format!("column {column} is not json: {e}")))
}

/// A JSON column's value read as `T` (a typed shape); one that does not
/// fit is a projector bug (500 without detail).
pub fn decode<T: serde::de::DeserializeOwned>(column: &str, value: Value) -> Result<T, QueryError> {
    serde_json::from_value(value)
        .map_err(|e| QueryError::Corrupt(format!("column {column} does not fit its shape: {e}")))
}

/// A text column read by `parse` (an id, a date, a domain enumeration);
/// one that does not parse is a projector bug (500 without detail).
pub fn parse_text<T, E: std::fmt::Display>(
    column: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, QueryError> {
    parse(text).map_err(|e| QueryError::Corrupt(format!("column {column} does not parse: {e}")))
}

/// Whether the pool talks to PostgreSQL (for the few statements that are
/// not portable, such as choosing a transaction's isolation level).
pub fn is_postgres(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Begins a read-only transaction that sees one snapshot across
/// statements: SQLite's read transactions do; PostgreSQL's default READ
/// COMMITTED does not, so it is raised to REPEATABLE READ (the first
/// statement of the transaction).
pub async fn snapshot(db: &sqlx::AnyPool) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
    let mut tx = db.begin().await?;
    if is_postgres(&tx) {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::new("SELECT 1 WHERE a = ");
        sql.bind(1i64).push(" AND b = ").bind("x");
        assert_eq!(sql.text(), "SELECT 1 WHERE a = $1 AND b = $2");
        assert_eq!(sql.arg_count(), 2);
    }

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_escape(r"50%_off\"), r"50\%\_off\\");
        assert_eq!(like_escape("nifty"), "nifty");
    }
}
