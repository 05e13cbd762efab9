//! The API-key index (stream `apikey-{api_key_id}`): which partner a key id
//! belongs to.
//!
//! Admin routes address keys by `api_key_id` alone, while a key's state lives
//! in its partner's stream. Reading a read model to find the partner could
//! lag; this one-event stream, appended with `NoStream` when the key is
//! issued, is authoritative and also guarantees that a key id is used once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::event::Aggregate;
use crate::ids::{ApiKeyId, PartnerId};

/// The stream of one key id.
pub fn stream_name(api_key_id: &ApiKeyId) -> String {
    format!("{}-{api_key_id}", ApiKeyIndexAggregate::STREAM_PREFIX)
}

/// Which partner holds the key, once assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyIndexState {
    /// The partner the key id was issued to.
    pub partner_id: Option<PartnerId>,
}

/// Records that a key id belongs to a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignApiKey {
    /// The new key's id.
    pub api_key_id: ApiKeyId,
    /// The partner it is issued to.
    pub partner_id: PartnerId,
    /// When.
    pub now: DateTime<Utc>,
}

/// The index's only command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyIndexCommand {
    /// See [`AssignApiKey`].
    AssignApiKey(AssignApiKey),
}

enum_from!(ApiKeyIndexCommand { AssignApiKey });

/// A key id was given to a partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyAssigned {
    /// The key's id.
    pub api_key_id: ApiKeyId,
    /// Its partner.
    pub partner_id: PartnerId,
    /// When.
    pub at: DateTime<Utc>,
}

/// No schema has changed yet.
pub const API_KEY_INDEX_UPCASTERS: &[crate::event::Upcaster] = &[];

domain_events! {
    /// Events of the API-key index.
    pub enum ApiKeyIndexEvent (upcasters: API_KEY_INDEX_UPCASTERS) {
        /// See [`ApiKeyAssigned`].
        ApiKeyAssigned = 1,
    }
}

/// Marker type of the index aggregate.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiKeyIndexAggregate;

impl Aggregate for ApiKeyIndexAggregate {
    type State = ApiKeyIndexState;
    type Command = ApiKeyIndexCommand;
    type Event = ApiKeyIndexEvent;
    const STREAM_PREFIX: &'static str = "apikey";

    fn decide(
        state: &ApiKeyIndexState,
        command: ApiKeyIndexCommand,
    ) -> Result<Vec<ApiKeyIndexEvent>, DomainError> {
        match command {
            ApiKeyIndexCommand::AssignApiKey(c) => match &state.partner_id {
                Some(p) if *p == c.partner_id => Ok(vec![]),
                Some(_) => Err(DomainError::AlreadyExists { what: "api key" }),
                None => Ok(vec![ApiKeyAssigned {
                    api_key_id: c.api_key_id,
                    partner_id: c.partner_id,
                    at: c.now,
                }
                .into()]),
            },
        }
    }

    fn evolve(mut state: ApiKeyIndexState, event: &ApiKeyIndexEvent) -> ApiKeyIndexState {
        match event {
            ApiKeyIndexEvent::ApiKeyAssigned(e) => state.partner_id = Some(e.partner_id.clone()),
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DomainEvent;

    fn assign(partner: &str) -> ApiKeyIndexCommand {
        AssignApiKey {
            api_key_id: ApiKeyId::from_uuid(uuid::Uuid::nil()),
            partner_id: PartnerId::parse(partner).expect("valid partner id"),
            now: DateTime::<Utc>::UNIX_EPOCH,
        }
        .into()
    }

    #[test]
    fn assigning_a_fresh_key_id_records_its_partner() {
        let events = ApiKeyIndexAggregate::decide(&ApiKeyIndexState::default(), assign("ZEBU"))
            .expect("fresh key id is assignable");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type(), "ApiKeyAssigned");
        let state = ApiKeyIndexAggregate::replay(&events);
        assert_eq!(
            state.partner_id.map(|p| p.to_string()).as_deref(),
            Some("ZEBU")
        );
    }

    #[test]
    fn assigning_a_key_id_to_a_second_partner_is_refused() {
        let events = ApiKeyIndexAggregate::decide(&ApiKeyIndexState::default(), assign("ZEBU"))
            .expect("fresh");
        let state = ApiKeyIndexAggregate::replay(&events);
        let err = ApiKeyIndexAggregate::decide(&state, assign("ANGEL")).expect_err("taken");
        assert_eq!(err, DomainError::AlreadyExists { what: "api key" });
        assert_eq!(
            ApiKeyIndexAggregate::decide(&state, assign("ZEBU")).expect("same partner"),
            vec![]
        );
    }
}
