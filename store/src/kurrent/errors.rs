//! How the client's errors become the store's: [`Fail`] inside the backend,
//! [`StoreError`] at its edge.

use std::fmt;

use kurrentdb as kdb;

use crate::{Revision, StoreError};

/// gRPC `INVALID_ARGUMENT`, e.g. a `$all` position that is not a record.
const GRPC_INVALID_ARGUMENT: i32 = 3;

/// Why a read failed: the client's error (which may call for a new client),
/// or the store's own.
#[derive(Debug)]
pub(super) enum Fail {
    Client(kdb::Error),
    Store(StoreError),
}

impl From<kdb::Error> for Fail {
    fn from(e: kdb::Error) -> Self {
        Fail::Client(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Client(e) => write!(f, "{e}"),
            Fail::Store(e) => write!(f, "{e}"),
        }
    }
}

/// Whether a failed request certainly never reached the server's write
/// path, so that sending it again cannot write twice.
pub(super) fn unsent(e: &kdb::Error) -> bool {
    matches!(
        e,
        kdb::Error::ConnectionClosed | kdb::Error::NotLeaderException(_)
    )
}

pub(super) fn store_error(e: kdb::Error) -> StoreError {
    match e {
        kdb::Error::ResourceDeleted => StoreError::Corrupt(
            "the stream was deleted in KurrentDB (Basketry never deletes streams)".into(),
        ),
        kdb::Error::AccessDenied => StoreError::Unavailable(
            "KurrentDB denied access (check the credentials of the connection string)".into(),
        ),
        kdb::Error::Grpc { code, message } if i32::from(code) == GRPC_INVALID_ARGUMENT => {
            StoreError::Invalid(format!("KurrentDB refused the request: {message}"))
        }
        other => StoreError::Unavailable(format!("KurrentDB: {other}")),
    }
}

pub(super) fn current_revision(current: kdb::CurrentRevision) -> Option<Revision> {
    match current {
        kdb::CurrentRevision::Current(r) => Some(Revision(r)),
        kdb::CurrentRevision::NoStream => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_store_errors() {
        assert!(matches!(
            store_error(kdb::Error::ConnectionClosed),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::GrpcConnectionError(
                kdb::GrpcConnectionError::MaxDiscoveryAttemptReached(3)
            )),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::ServerError("unavailable".into())),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::DeadlineExceeded),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::AccessDenied),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::ResourceDeleted),
            StoreError::Corrupt(_)
        ));
        assert_eq!(
            current_revision(kdb::CurrentRevision::Current(7)),
            Some(Revision(7))
        );
        assert_eq!(current_revision(kdb::CurrentRevision::NoStream), None);
        assert!(unsent(&kdb::Error::ConnectionClosed));
        assert!(!unsent(&kdb::Error::DeadlineExceeded));
        assert!(!unsent(&kdb::Error::ServerError("x".into())));
    }
}
