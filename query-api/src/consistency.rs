//! Read-your-writes (SPEC §4): a query that sends back the
//! `X-Consistency-Token: <commit>.<prepare>` a command answered with waits
//! until the read models include that command.
//!
//! "Include" means every projector's checkpoint in `projector_checkpoints`
//! is at or past the token's position (positions compare by commit, then
//! prepare — the order of the global log). The wait polls every
//! [`POLL_INTERVAL`] up to [`crate::QueryState::consistency_wait`], then
//! answers 503 `consistency_timeout` with `Retry-After: 1`. While no
//! projector has written a checkpoint at all, nothing is caught up.
//!
//! A token that is not two non-negative integers joined by a dot is 400
//! `invalid_consistency_token`; so are two such headers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use sqlx::AnyPool;
use tokio::time::Instant;

use crate::error::QueryError;
use crate::rows::{int, Sql};

/// The request header (the command API's
/// [`basketry_command_api::command::CONSISTENCY_TOKEN`]).
pub use basketry_command_api::command::CONSISTENCY_TOKEN;

/// How often the checkpoints are read while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A global-log position, as the command API's consistency tokens carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token {
    /// KurrentDB's commit position (the SQL stores' global sequence).
    pub commit: i64,
    /// KurrentDB's prepare position (equal to `commit` in the SQL stores).
    pub prepare: i64,
}

impl Token {
    /// Reads `commit.prepare`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (commit, prepare) = text.trim().split_once('.')?;
        let number = |s: &str| {
            if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse::<i64>().ok()
            }
        };
        Some(Self {
            commit: number(commit)?,
            prepare: number(prepare)?,
        })
    }

    /// The token of the request, if it sent one; 400 when malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, QueryError> {
        let mut values = headers.get_all(CONSISTENCY_TOKEN);
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let invalid = || {
            QueryError::bad_request(
                "invalid_consistency_token",
                "X-Consistency-Token must be the `commit.prepare` value a command answered with",
            )
        };
        if values.next().is_some() {
            return Err(invalid());
        }
        value
            .to_str()
            .ok()
            .and_then(Self::parse)
            .map(Some)
            .ok_or_else(invalid)
    }
}

/// Whether every projector has checkpointed at or past `token` (and at
/// least one has checkpointed at all); every name in `expected` must have a
/// checkpoint.
pub async fn caught_up(
    db: &AnyPool,
    token: Token,
    expected: &[String],
) -> Result<bool, QueryError> {
    let rows =
        Sql::new("SELECT name, commit_position, prepare_position FROM projector_checkpoints")
            .query()
            .fetch_all(db)
            .await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let names: Vec<String> = rows
        .iter()
        .filter_map(|r| sqlx::Row::try_get::<String, _>(r, "name").ok())
        .collect();
    if expected.iter().any(|e| !names.contains(e)) {
        return Ok(false);
    }
    for row in &rows {
        let at = Token {
            commit: int(row, "commit_position")?,
            prepare: int(row, "prepare_position")?,
        };
        if at < token {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The process's view of the projectors' checkpoints, for requests that
/// wait for a consistency token.
#[derive(Clone)]
pub struct CheckpointWatcher {
    inner: Arc<Inner>,
}

struct Inner {
    db: AnyPool,
    expected: Vec<String>,
    reads: AtomicU64,
}

impl CheckpointWatcher {
    /// A watcher of the checkpoints in `db`; a token waits for every name in
    /// `expected` (empty: whichever projectors have checkpointed).
    pub fn new(db: AnyPool, expected: Vec<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                expected,
                reads: AtomicU64::new(0),
            }),
        }
    }

    /// How many times the checkpoints have been read from the database.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// Waits until the checkpoints reach `token`, at most `wait`; then
    /// [`QueryError::ConsistencyTimeout`].
    pub async fn wait_for(&self, token: Token, wait: Duration) -> Result<(), QueryError> {
        let deadline = Instant::now() + wait;
        loop {
            self.inner.reads.fetch_add(1, Ordering::Relaxed);
            if caught_up(&self.inner.db, token, &self.inner.expected).await? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(QueryError::ConsistencyTimeout);
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_two_integers_and_compare_commit_first() {
        assert_eq!(
            Token::parse("12.7"),
            Some(Token {
                commit: 12,
                prepare: 7
            })
        );
        for bad in [
            "",
            "12",
            "12.",
            ".7",
            "a.b",
            "-1.2",
            "1.2.3",
            "1 .2",
            "99999999999999999999.1",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
        assert!(Token::parse("2.0") > Token::parse("1.9"));
        assert!(Token::parse("2.1") > Token::parse("2.0"));
    }
}
