//! Signed checkpoints of the log head (`basketry audit checkpoint`), and
//! their check in `basketry audit verify --checkpoint`.
//!
//! The per-stream hash chain proves that what is stored was not rewritten,
//! but cannot see what was removed: a deleted stream, or a stream whose last
//! events were cut off, still has an unbroken chain. A checkpoint records the
//! head of the log — its newest position, the number of events, and every
//! stream's last revision and hash with a digest over them — signed with an
//! Ed25519 key that only the auditor holds. A later verify compares the log
//! with it and names each stream that is gone, shorter, or different at the
//! checkpointed revision, and (on the SQL backends, whose positions are a
//! sequence) every gap in positions up to the checkpoint's head. See
//! `docs/adr/0014-signed-checkpoints-and-the-billing-index.md`.
//!
//! The signature covers the text
//! `basketry-audit-checkpoint-v1\n{created_at}\n{commit}.{prepare}\n{events}\n{streams_digest}\n`
//! (`-` for the head of an empty log); `streams_digest` is
//! [`heads_digest`] over `streams`, so the list is covered through it.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use basketry_store::chain::{format_timestamp, heads_digest, LogHeads, PositionGaps, StreamHead};
use basketry_store::{EventStore, Position, RecordedEvent};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{AuditError, PAGE};

/// The format tag, first line of the signed text.
pub const FORMAT: &str = "basketry-audit-checkpoint-v1";

/// Why a key or a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A key file could not be read or written.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The checkpoint document is not one this program wrote.
    #[error("checkpoint: {0}")]
    Malformed(String),
    /// The signature does not verify with the given public key.
    #[error("the checkpoint's signature does not verify with the given public key: refusing it")]
    BadSignature,
}

/// What a checkpoint states about the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBody {
    /// [`FORMAT`].
    pub format: String,
    /// When it was taken (RFC 3339, microseconds).
    pub created_at: String,
    /// Newest position of the log then (`null`: the log was empty).
    pub head: Option<Position>,
    /// Events in the log up to `head`.
    pub events: u64,
    /// [`heads_digest`] over `streams`.
    pub streams_digest: String,
    /// Every stream's last revision and hash, in stream-id order.
    pub streams: Vec<StreamHead>,
}

impl CheckpointBody {
    /// The exact bytes signed.
    pub fn signed_text(&self) -> String {
        let head = self
            .head
            .map_or("-".to_string(), |p| format!("{}.{}", p.commit, p.prepare));
        format!(
            "{}\n{}\n{head}\n{}\n{}\n",
            self.format, self.created_at, self.events, self.streams_digest
        )
    }
}

/// A checkpoint with its signature, as `basketry audit checkpoint` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// What is signed.
    pub checkpoint: CheckpointBody,
    /// The signer's Ed25519 public key, hex (informative: verify uses the
    /// key the auditor gives, never this one).
    pub public_key: String,
    /// Ed25519 signature of [`CheckpointBody::signed_text`], hex.
    pub signature: String,
}

fn key_error(path: &Path, reason: impl ToString) -> CheckpointError {
    CheckpointError::KeyFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Where the public key of the private key file `path` is written:
/// `path` with `.pub` appended.
pub fn public_key_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    p.into()
}

/// Makes a new key: the private key (hex seed) in `path`, created with mode
/// 0600 and never overwritten, and the public key (hex) beside it.
pub fn new_key(path: &Path) -> Result<SigningKey, CheckpointError> {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let key = SigningKey::from_bytes(&seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| key_error(path, e))?;
    file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error(path, e))?;
    let public = public_key_path(path);
    std::fs::write(
        &public,
        format!("{}\n", hex::encode(key.verifying_key().as_bytes())),
    )
    .map_err(|e| key_error(&public, e))?;
    Ok(key)
}

fn read_hex32(path: &Path) -> Result<[u8; 32], CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    let bytes = hex::decode(text.trim()).map_err(|e| key_error(path, format!("not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| key_error(path, "expected 32 bytes (64 hex digits)"))
}

/// Reads a private key written by [`new_key`].
pub fn read_key(path: &Path) -> Result<SigningKey, CheckpointError> {
    Ok(SigningKey::from_bytes(&read_hex32(path)?))
}

/// Reads a public key written by [`new_key`].
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, CheckpointError> {
    VerifyingKey::from_bytes(&read_hex32(path)?)
        .map_err(|e| key_error(path, format!("not an Ed25519 public key: {e}")))
}

/// Reads the log up to its current head and signs what it found.
pub async fn take(
    store: &dyn EventStore,
    key: &SigningKey,
) -> Result<SignedCheckpoint, AuditError> {
    // The head first: events appended while the log is read are left for
    // the next checkpoint.
    let head = store.head().await?;
    let mut heads = LogHeads::new();
    let mut after: Option<Position> = None;
    if let Some(head) = head {
        'read: loop {
            let page = store.read_all(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.position);
            for event in &page {
                if event.position > head {
                    break 'read;
                }
                heads.push(event);
            }
        }
    }
    let streams = heads.heads();
    let body = CheckpointBody {
        format: FORMAT.to_string(),
        created_at: format_timestamp(&chrono::Utc::now()),
        head: heads.last(),
        events: heads.events(),
        streams_digest: heads_digest(&streams),
        streams,
    };
    let signature = key.sign(body.signed_text().as_bytes());
    Ok(SignedCheckpoint {
        public_key: hex::encode(key.verifying_key().as_bytes()),
        signature: hex::encode(signature.to_bytes()),
        checkpoint: body,
    })
}

/// Checks the signature with the auditor's key and that the stream list is
/// the one signed; the body on success.
pub fn open(
    signed: &SignedCheckpoint,
    key: &VerifyingKey,
) -> Result<CheckpointBody, CheckpointError> {
    let body = &signed.checkpoint;
    if body.format != FORMAT {
        return Err(CheckpointError::Malformed(format!(
            "format {:?}, expected {FORMAT:?}",
            body.format
        )));
    }
    let bytes: [u8; 64] = hex::decode(&signed.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CheckpointError::BadSignature)?;
    key.verify(
        body.signed_text().as_bytes(),
        &Signature::from_bytes(&bytes),
    )
    .map_err(|_| CheckpointError::BadSignature)?;
    if heads_digest(&body.streams) != body.streams_digest {
        // The signed digest does not cover this list: it was edited.
        return Err(CheckpointError::BadSignature);
    }
    Ok(body.clone())
}

/// The log against a checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointCheck {
    /// Nothing seen at the checkpoint is gone or changed, and no position
    /// up to its head is missing.
    pub ok: bool,
    /// The checkpoint's head (`commit.prepare`).
    pub head: Option<String>,
    /// When it was taken.
    pub created_at: String,
    /// Events up to the head then.
    pub events_at_checkpoint: u64,
    /// Events up to the head now.
    pub events_now: u64,
    /// Streams the checkpoint names.
    pub streams_checked: usize,
    /// Streams gone, shorter or different.
    pub streams: Vec<StreamProblem>,
    /// Whether positions were checked for gaps (not on KurrentDB, whose
    /// positions are not a sequence).
    pub gaps_checked: bool,
    /// Missing positions up to the head, as inclusive ranges.
    pub gaps: Vec<PositionGap>,
}

/// A stream that is not what the checkpoint saw.
#[derive(Debug, Clone, Serialize)]
pub struct StreamProblem {
    /// The stream.
    pub stream_id: String,
    /// `missing` (no event left), `shorter` (its last events are gone) or
    /// `changed` (its event at the checkpointed revision has another hash).
    pub kind: &'static str,
    /// In words.
    pub detail: String,
}

/// Positions missing from the log, `from` to `to` inclusive.
#[derive(Debug, Clone, Serialize)]
pub struct PositionGap {
    /// First missing position.
    pub from: u64,
    /// Last missing position.
    pub to: u64,
}

/// Follows the log read of `audit verify` and compares it with a
/// checkpoint: memory grows with the checkpoint's streams.
pub struct CheckpointAudit {
    body: CheckpointBody,
    /// Per checkpointed stream: (revision then, hash then, highest revision
    /// seen, hash seen at the checkpointed revision).
    seen: HashMap<String, (u64, String, Option<u64>, Option<String>)>,
    gaps: Option<PositionGaps>,
    events_now: u64,
}

impl CheckpointAudit {
    /// Compares with `body`; checks positions for gaps when `sequential`.
    pub fn new(body: CheckpointBody, sequential: bool) -> Self {
        let seen = body
            .streams
            .iter()
            .map(|h| {
                (
                    h.stream_id.clone(),
                    (h.revision, h.hash.clone(), None, None),
                )
            })
            .collect();
        Self {
            body,
            seen,
            gaps: sequential.then(PositionGaps::new),
            events_now: 0,
        }
    }

    /// Takes the next event of the log.
    pub fn push(&mut self, e: &RecordedEvent) {
        let within = self.body.head.is_some_and(|h| e.position <= h);
        if within {
            self.events_now += 1;
            if let Some(gaps) = &mut self.gaps {
                gaps.push(e.position);
            }
        }
        if let Some((revision, _, highest, hash)) = self.seen.get_mut(e.stream_id.as_str()) {
            *highest = Some(highest.map_or(e.revision.0, |h| h.max(e.revision.0)));
            if e.revision.0 == *revision {
                *hash = Some(e.metadata.hash.clone());
            }
        }
    }

    /// The outcome, streams in stream-id order.
    pub fn finish(self) -> CheckpointCheck {
        let mut streams: Vec<StreamProblem> = Vec::new();
        let mut names: Vec<&String> = self.seen.keys().collect();
        names.sort();
        for name in names {
            let (revision, hash, highest, found) = &self.seen[name];
            let problem = match (highest, found) {
                (None, _) => Some((
                    "missing",
                    format!("stream {name} is gone: it had {} events", revision + 1),
                )),
                (Some(h), _) if h < revision => Some((
                    "shorter",
                    format!(
                        "stream {name} ends at revision {h}; it reached revision {revision} at the checkpoint"
                    ),
                )),
                (_, Some(f)) if f == hash => None,
                _ => Some((
                    "changed",
                    format!(
                        "stream {name}: the event at revision {revision} is not the one checkpointed"
                    ),
                )),
            };
            if let Some((kind, detail)) = problem {
                streams.push(StreamProblem {
                    stream_id: name.clone(),
                    kind,
                    detail,
                });
            }
        }
        let gaps_checked = self.gaps.is_some();
        let gaps: Vec<PositionGap> = match (self.gaps, self.body.head) {
            (Some(gaps), Some(head)) => gaps
                .finish(head.commit)
                .into_iter()
                .map(|(from, to)| PositionGap { from, to })
                .collect(),
            _ => Vec::new(),
        };
        CheckpointCheck {
            ok: streams.is_empty() && gaps.is_empty() && self.events_now == self.body.events,
            head: self
                .body
                .head
                .map(|p| format!("{}.{}", p.commit, p.prepare)),
            created_at: self.body.created_at.clone(),
            events_at_checkpoint: self.body.events,
            events_now: self.events_now,
            streams_checked: self.seen.len(),
            streams,
            gaps_checked,
            gaps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> CheckpointBody {
        let streams = vec![StreamHead {
            stream_id: "basket-1".into(),
            revision: 2,
            hash: "ab".repeat(32),
        }];
        CheckpointBody {
            format: FORMAT.into(),
            created_at: "2026-11-21T10:00:00.000000Z".into(),
            head: Some(Position::sequence(3)),
            events: 3,
            streams_digest: heads_digest(&streams),
            streams,
        }
    }

    fn signed(key: &SigningKey, body: CheckpointBody) -> SignedCheckpoint {
        SignedCheckpoint {
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(key.sign(body.signed_text().as_bytes()).to_bytes()),
            checkpoint: body,
        }
    }

    #[test]
    fn a_checkpoint_opens_only_with_its_key_and_unchanged() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let good = signed(&key, body());
        assert_eq!(
            open(&good, &key.verifying_key()).expect("opens"),
            good.checkpoint
        );
        assert!(matches!(
            open(&good, &other.verifying_key()),
            Err(CheckpointError::BadSignature)
        ));
        let mut fewer = good.clone();
        fewer.checkpoint.events = 2;
        assert!(matches!(
            open(&fewer, &key.verifying_key()),
            Err(CheckpointError::BadSignature)
        ));
        let mut edited = good;
        edited.checkpoint.streams[0].revision = 1;
        assert!(matches!(
            open(&edited, &key.verifying_key()),
            Err(CheckpointError::BadSignature)
        ));
    }
}
