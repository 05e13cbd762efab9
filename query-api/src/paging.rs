//! Cursor paging (docs/reference/api.md#paging): `limit` (1–100, default 20) and an opaque
//! `cursor`; replies carry `next_cursor`, `null` on the last page.
//!
//! Paging is by keyset, never by offset: every list has a total order
//! ending in a unique column ([`Ordering`]), the cursor holds the sort key
//! of the last row served, and the next page is "the rows strictly after
//! that key". Rows that arrive between two page requests therefore cannot
//! shift the rows already listed: nothing is served twice and nothing is
//! skipped. (A row whose sort key *changes* — a template's
//! `subscriber_count` under `sort=popular` — moves in the order; that is
//! what sorting by a live value means.)
//!
//! A cursor is the unpadded base64url of the compact JSON
//! `{"o": <ordering name>, "k": [<key values>]}`. It is opaque to clients:
//! the format may change. A cursor that does not decode, or that belongs to
//! another list or sort, is 400 `invalid_cursor`.

use serde::{Deserialize, Serialize};

use crate::error::QueryError;
use crate::params::Params;
use crate::rows::{Arg, Sql};

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest `limit`.
pub const MAX_LIMIT: i64 = 100;

/// Reads `limit`: 1–100, default 20; anything else is 422 naming `limit`.
pub fn limit(params: &Params) -> Result<i64, QueryError> {
    match params.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                QueryError::invalid(
                    "limit",
                    format!("must be an integer between 1 and {MAX_LIMIT}"),
                )
            }),
    }
}

/// Sort direction of one key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// Whether a key column holds integers or text (what its cursor value must
/// be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `BIGINT`.
    Int,
    /// `TEXT`.
    Text,
}

/// A list's total order: SQL expressions with their direction; the last
/// one is unique, so no two rows tie.
#[derive(Debug, Clone, Copy)]
pub struct Ordering {
    /// Names the list and sort inside cursors, so a cursor of one list is
    /// refused by another.
    pub name: &'static str,
    /// `(SQL expression, direction, kind)`, most significant first. The
    /// expressions never yield NULL (they `COALESCE` where needed), since
    /// NULL compares to nothing.
    pub keys: &'static [(&'static str, Dir, Kind)],
}

/// One value of a sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    /// An integer column.
    Int(i64),
    /// A text column.
    Text(String),
}

impl From<&KeyValue> for Arg {
    fn from(v: &KeyValue) -> Self {
        match v {
            KeyValue::Int(i) => Arg::Int(*i),
            KeyValue::Text(s) => Arg::Text(s.clone()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CursorRepr {
    o: String,
    k: Vec<KeyValue>,
}

impl Ordering {
    /// The `ORDER BY` clause (without the keywords).
    pub fn order_by(&self) -> String {
        self.keys
            .iter()
            .map(|(expr, dir, _)| match dir {
                Dir::Asc => format!("{expr} ASC"),
                Dir::Desc => format!("{expr} DESC"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Encodes the position after the row whose key is `key`.
    pub fn encode(&self, key: Vec<KeyValue>) -> String {
        let repr = CursorRepr {
            o: self.name.to_string(),
            k: key,
        };
        // Serialising strings and integers cannot fail.
        let json = serde_json::to_vec(&repr).unwrap_or_default();
        b64url::encode(&json)
    }

    /// Decodes a cursor of this ordering; 400 `invalid_cursor` otherwise.
    pub fn decode(&self, cursor: &str) -> Result<Vec<KeyValue>, QueryError> {
        let invalid = || {
            QueryError::bad_request(
                "invalid_cursor",
                "cursor is not one this list handed out; start again without it",
            )
        };
        let bytes = b64url::decode(cursor).ok_or_else(invalid)?;
        let repr: CursorRepr = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if repr.o != self.name || repr.k.len() != self.keys.len() {
            return Err(invalid());
        }
        let kinds_match = repr.k.iter().zip(self.keys).all(|(v, (_, _, kind))| {
            matches!(
                (v, kind),
                (KeyValue::Int(_), Kind::Int) | (KeyValue::Text(_), Kind::Text)
            )
        });
        if !kinds_match {
            return Err(invalid());
        }
        Ok(repr.k)
    }

    /// Appends ` AND (<rows strictly after key>)` to `sql`:
    /// `k1 > v1 OR (k1 = v1 AND k2 > v2) OR …`, with `<` for descending
    /// keys. Placeholders are never reused (each value is bound again), as
    /// not every driver allows `$1` twice.
    pub fn push_after(&self, sql: &mut Sql, key: &[KeyValue]) {
        sql.push(" AND (");
        for i in 0..self.keys.len() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push("(");
            for (j, (expr, dir, _)) in self.keys.iter().enumerate().take(i + 1) {
                if j > 0 {
                    sql.push(" AND ");
                }
                let op = if j < i {
                    "="
                } else if *dir == Dir::Asc {
                    ">"
                } else {
                    "<"
                };
                sql.push(&format!("{expr} {op} "));
                sql.bind(Arg::from(&key[j]));
            }
            sql.push(")");
        }
        sql.push(")");
    }
}

/// The request's paging: page size and where to start.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Rows per page.
    pub limit: i64,
    /// The key of the last row already served, if any.
    pub after: Option<Vec<KeyValue>>,
    /// The list's order.
    pub ordering: Ordering,
}

impl PageRequest {
    /// Reads `limit` and `cursor` for a list in `ordering`.
    pub fn from_params(params: &Params, ordering: Ordering) -> Result<Self, QueryError> {
        let limit = limit(params)?;
        let after = params
            .get("cursor")
            .map(|c| ordering.decode(c))
            .transpose()?;
        Ok(Self {
            limit,
            after,
            ordering,
        })
    }

    /// Appends the keyset condition (when there is a cursor), the order and
    /// `LIMIT limit + 1` — one row more than the page, to know whether a
    /// next page exists without counting.
    pub fn push_tail(&self, sql: &mut Sql) {
        if let Some(key) = &self.after {
            self.ordering.push_after(sql, key);
        }
        sql.push(&format!(" ORDER BY {} LIMIT ", self.ordering.order_by()));
        sql.bind(Arg::Int(self.limit + 1));
    }

    /// Cuts the fetched rows to the page and makes `next_cursor` from the
    /// last row kept when more rows followed.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> Vec<KeyValue>) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|last| self.ordering.encode(key(last)))
        } else {
            None
        };
        Page { rows, next_cursor }
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    /// The rows, in the list's order.
    pub rows: Vec<T>,
    /// The cursor of the next page, `None` on the last.
    pub next_cursor: Option<String>,
}

/// Unpadded base64url (RFC 4648 §5).
mod b64url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn value(c: u8) -> Option<u32> {
        ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
    }

    pub(super) fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let mut acc = 0u32;
            for (i, &b) in chunk.iter().enumerate() {
                acc |= u32::from(b) << (16 - 8 * i);
            }
            for i in 0..=chunk.len() {
                let index = (acc >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            }
        }
        out
    }

    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let bytes = text.as_bytes();
        if bytes.len() % 4 == 1 || bytes.len() > 4096 {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let mut acc = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                acc |= value(c)? << (18 - 6 * i);
            }
            let produced = chunk.len() - 1;
            out.extend_from_slice(&acc.to_be_bytes()[1..=produced]);
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trips_every_length() {
            let data: Vec<u8> = (0..=255u8).collect();
            for n in 0..data.len() {
                let text = super::encode(&data[..n]);
                assert_eq!(super::decode(&text).unwrap(), &data[..n], "length {n}");
            }
            assert!(super::decode("a").is_none());
            assert!(super::decode("ab+/").is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: Ordering = Ordering {
        name: "test",
        keys: &[("a", Dir::Desc, Kind::Int), ("b", Dir::Asc, Kind::Text)],
    };

    #[test]
    fn cursors_round_trip_and_refuse_other_lists() {
        let key = vec![KeyValue::Int(7), KeyValue::Text("x".into())];
        let cursor = ORDER.encode(key.clone());
        assert_eq!(ORDER.decode(&cursor).unwrap(), key);
        let other = Ordering {
            name: "other",
            ..ORDER
        };
        assert!(other.decode(&cursor).is_err());
        assert!(ORDER.decode("garbage!").is_err());
        assert!(ORDER.decode(&ORDER.encode(vec![KeyValue::Int(7)])).is_err());
        assert!(ORDER
            .decode(&ORDER.encode(vec![KeyValue::Text("7".into()), KeyValue::Text("x".into())]))
            .is_err());
    }

    #[test]
    fn the_keyset_condition_binds_every_value_once_per_use() {
        let mut sql = Sql::new("SELECT * FROM t WHERE 1 = 1");
        ORDER.push_after(&mut sql, &[KeyValue::Int(7), KeyValue::Text("x".into())]);
        assert_eq!(
            sql.text(),
            "SELECT * FROM t WHERE 1 = 1 AND ((a < $1) OR (a = $2 AND b > $3))"
        );
        assert_eq!(sql.arg_count(), 3);
    }

    #[test]
    fn limit_defaults_to_20_and_stays_within_1_to_100() {
        let p = |q: &str| Params::parse(q, &["limit"]).unwrap();
        assert_eq!(limit(&p("")).unwrap(), 20);
        assert_eq!(limit(&p("limit=100")).unwrap(), 100);
        for bad in ["limit=0", "limit=101", "limit=-1", "limit=ten"] {
            assert!(limit(&p(bad)).is_err(), "{bad}");
        }
    }
}
