//! The KurrentDB client and its replacement: parsing the connection string,
//! creating a client, and swapping in a new one once the client's connection
//! task has stopped for good. Nothing here ever shows the connection
//! string's password.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError, RwLock};

use kurrentdb as kdb;

use super::errors::{store_error, unsent, Fail};
use super::KurrentStore;
use crate::StoreError;

/// The settings and the client currently in use.
pub(super) struct Conn {
    pub(super) settings: kdb::ClientSettings,
    current: RwLock<Current>,
}

/// A client and how many clients came before it.
#[derive(Clone)]
pub(super) struct Current {
    pub(super) generation: u64,
    pub(super) client: Arc<kdb::Client>,
}

impl Conn {
    /// The first client made from `settings`.
    pub(super) fn new(settings: kdb::ClientSettings, client: kdb::Client) -> Self {
        Self {
            settings,
            current: RwLock::new(Current {
                generation: 0,
                client: Arc::new(client),
            }),
        }
    }

    pub(super) fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces client `seen` if `err` says its connection task has stopped
    /// (it never restarts by itself). Calls that noticed the same dead
    /// client replace it only once.
    pub(super) fn recover(&self, seen: u64, err: &kdb::Error) {
        if !matches!(
            err,
            kdb::Error::ConnectionClosed | kdb::Error::GrpcConnectionError(_)
        ) {
            return;
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.generation != seen {
            return;
        }
        match build_client(&self.settings) {
            Ok(client) => {
                tracing::info!(
                    error = %err,
                    "kurrentdb: the client's connection task stopped; using a new client"
                );
                *current = Current {
                    generation: seen + 1,
                    client: Arc::new(client),
                };
            }
            Err(e) => tracing::warn!(error = %e, "kurrentdb: could not create a new client"),
        }
    }
}

impl KurrentStore {
    /// Runs a read with the current client, replacing a dead client and
    /// retrying once when the request was never sent.
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(Arc<kdb::Client>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, Fail>> + Send,
        T: Send,
    {
        let mut retried = false;
        loop {
            let cur = self.conn.current();
            match op(Arc::clone(&cur.client)).await {
                Ok(v) => return Ok(v),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Client(e)) => {
                    self.conn.recover(cur.generation, &e);
                    if !retried && unsent(&e) {
                        retried = true;
                        continue;
                    }
                    return Err(store_error(e));
                }
            }
        }
    }
}

pub(super) fn parse_settings(url: &str) -> Result<kdb::ClientSettings, StoreError> {
    url.parse::<kdb::ClientSettings>().map_err(|e| {
        // The parse error's message may be the whole connection string.
        let detail = match e.error() {
            Some(parse) => parse.to_string(),
            None => e.message().to_string(),
        };
        StoreError::Invalid(redact(
            &format!("invalid KurrentDB connection string {url}: {detail}"),
            url,
        ))
    })
}

pub(super) fn build_client(settings: &kdb::ClientSettings) -> Result<kdb::Client, StoreError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        StoreError::Invalid("the KurrentDB client must be created inside a Tokio runtime".into())
    })?;
    let settings = settings.clone();
    // The client unwraps the contents of a `tlsCAFile`; a bad file must not
    // take the caller down.
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        kdb::Client::with_runtime_handle(handle, settings)
    })) {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(StoreError::Invalid(format!(
            "cannot set up the KurrentDB client: {e}"
        ))),
        Err(_) => Err(StoreError::Invalid(
            "cannot set up the KurrentDB client: unreadable TLS certificate file".into(),
        )),
    }
}

/// The password of a connection string, if it has one. Errs towards
/// returning too much (everything up to the last `@`), never too little.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let userinfo = &rest[..rest.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// `text` with the connection string's password replaced by `***`.
pub(super) fn redact(text: &str, url: &str) -> String {
    match url_password(url) {
        Some(password) => text.replace(password, "***"),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_connection_strings_are_invalid_and_never_echo_the_password() {
        for url in [
            "kurrentdb://admin:s3cr3t-pw@localhost:notaport?tls=false",
            "http://admin:s3cr3t-pw@localhost:2113",
            "kurrentdb://admin:s3cr3t-pw@localhost:2113?tls=maybe",
            "kurrentdb://admin:s3cr3t-pw@localhost:2113?nodePreference=nobody",
            "kurrentdb://admin:s3cr3t-pw@localhost:2113/some/path",
            "not a url at all s3cr3t-pw",
        ] {
            match KurrentStore::connect(url) {
                Err(StoreError::Invalid(message)) => {
                    assert!(
                        !message.contains("s3cr3t-pw") || url_password(url).is_none(),
                        "{message}"
                    );
                }
                other => panic!("{url}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn passwords_are_found_and_redacted() {
        assert_eq!(
            url_password("kurrentdb://admin:changeit@host:2113"),
            Some("changeit")
        );
        assert_eq!(
            url_password("esdb://admin:p%40ss@a:1,b:2?tls=true"),
            Some("p%40ss")
        );
        assert_eq!(url_password("kurrentdb://admin@host:2113"), None);
        assert_eq!(url_password("kurrentdb://host:2113?tls=false"), None);
        assert_eq!(
            redact(
                "failed kurrentdb://admin:changeit@host",
                "kurrentdb://admin:changeit@host"
            ),
            "failed kurrentdb://admin:***@host"
        );
    }

    #[tokio::test]
    async fn a_valid_connection_string_makes_a_store_without_contacting_the_server() {
        let store = KurrentStore::connect("kurrentdb://admin:changeit@127.0.0.1:1?tls=false")
            .expect("parses");
        let shown = format!("{store:?}");
        assert!(
            shown.contains("127.0.0.1") && !shown.contains("changeit"),
            "{shown}"
        );
        let store = KurrentStore::connect("esdb+discover://cluster.example:2113").expect("parses");
        assert!(format!("{store:?}").contains("cluster.example"));
    }

    #[test]
    fn connecting_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(matches!(
            KurrentStore::connect("kurrentdb://127.0.0.1:2113?tls=false"),
            Err(StoreError::Invalid(_))
        ));
    }
}
