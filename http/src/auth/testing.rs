//! Test fixtures shared by the auth tests: a partner with one key in an
//! in-memory store, built through the domain's deciders exactly as the
//! handlers will, and a store that always fails.

use std::sync::Arc;

use basketry_domain::partner::{
    default_permissions, ApiKeyToken, Branding, GracePeriodHours, IssueApiKey, PartnerType,
    RateLimits, RegisterPartner, RevokeApiKey, RotateApiKey, SetApiKeyStatus,
};
use basketry_domain::{
    Actor, Aggregate, ApiKeyId, BasisPoints, BrokerId, DomainEvent, PartnerAggregate,
    PartnerCommand, PartnerId, PartnerName, RevenueShare, UserId,
};
use basketry_store::memory::MemoryStore;
use basketry_store::{
    AppendError, AppendOutcome, EventStore, EventStream, ExpectedRevision, NewEvent, NewMetadata,
    Position, RecordedEvent, Revision, StoreError, StreamId,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::credentials::{generate_api_key, generate_secret, hash_secret, PlainSecret};

/// 2026-01-01T00:00:00Z, when the fixture partner is registered.
pub(crate) fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn admin() -> Actor {
    Actor::Admin {
        user_id: UserId::from_uuid(Uuid::from_u128(1)),
    }
}

/// A registered partner with one issued key, in a memory store.
pub(crate) struct Fixture {
    /// The store holding `partner-ZEBU`.
    pub store: Arc<MemoryStore>,
    /// `ZEBU`.
    pub partner_id: PartnerId,
    /// The key's id.
    pub api_key_id: ApiKeyId,
    /// The `pk_zebu_live_…` key.
    pub key: ApiKeyToken,
    /// Its secret.
    pub secret: PlainSecret,
}

impl Fixture {
    /// Registers ZEBU (70/30, default permissions and limits) and issues
    /// one key at [`t0`].
    pub async fn new() -> Self {
        let partner_id = PartnerId::parse("ZEBU").unwrap();
        let fixture = Fixture {
            store: Arc::new(MemoryStore::new()),
            api_key_id: ApiKeyId::from_uuid(Uuid::now_v7()),
            key: generate_api_key(&partner_id),
            secret: generate_secret(&partner_id),
            partner_id,
        };
        let share = RevenueShare::new(
            BasisPoints::new(7000).unwrap(),
            BasisPoints::new(3000).unwrap(),
        )
        .unwrap();
        fixture
            .apply(RegisterPartner {
                actor: admin(),
                partner_id: fixture.partner_id.clone(),
                partner_name: PartnerName::parse("Zebu").unwrap(),
                partner_type: PartnerType::Broker,
                broker_id: BrokerId::parse("ZEBU").unwrap(),
                revenue_share: share,
                permissions: default_permissions(),
                rate_limits: RateLimits::default(),
                branding: Branding::default(),
                now: t0(),
            })
            .await;
        fixture
            .apply(IssueApiKey {
                actor: admin(),
                api_key_id: fixture.api_key_id,
                key: fixture.key.clone(),
                secret_hash: hash_secret(&fixture.secret).unwrap(),
                now: t0(),
            })
            .await;
        fixture
    }

    /// The store as the authenticator takes it.
    pub fn store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }

    /// Decides `command` against the partner's stream and appends the
    /// events, as a handler does.
    pub async fn apply(&self, command: impl Into<PartnerCommand>) {
        let stream =
            StreamId::parse(basketry_domain::partner::stream_name(&self.partner_id)).unwrap();
        let state = super::partner::load_partner(self.store.as_ref(), &stream)
            .await
            .unwrap();
        let expected = self
            .store
            .read_stream(&stream, Revision::START)
            .await
            .unwrap()
            .last()
            .map_or(ExpectedRevision::NoStream, |e| {
                ExpectedRevision::Exact(e.revision)
            });
        let events = PartnerAggregate::decide(&state, command.into()).unwrap();
        let events = events
            .iter()
            .map(|e| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: e.event_type().to_string(),
                schema_version: e.schema_version(),
                data: e.to_data(),
                metadata: NewMetadata {
                    actor: basketry_store::Actor {
                        kind: "admin".into(),
                        id: "test".into(),
                    },
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                    idempotency_key: None,
                },
            })
            .collect();
        self.store.append(&stream, expected, events).await.unwrap();
    }

    /// Suspends (`SUSPENDED`) or re-activates (`ACTIVE`) the key.
    pub async fn set_status(&self, status: basketry_domain::partner::ApiKeyStatus) {
        self.apply(SetApiKeyStatus {
            actor: admin(),
            api_key_id: self.api_key_id,
            status,
            reason: None,
            now: t0(),
        })
        .await;
    }

    /// Revokes the key.
    pub async fn revoke(&self) {
        self.apply(RevokeApiKey {
            actor: admin(),
            api_key_id: self.api_key_id,
            reason: None,
            now: t0(),
        })
        .await;
    }

    /// Rotates the key at `now` with `grace_hours` of grace; gives the new
    /// secret.
    pub async fn rotate(&self, grace_hours: i64, now: DateTime<Utc>) -> PlainSecret {
        let secret = generate_secret(&self.partner_id);
        self.apply(RotateApiKey {
            actor: admin(),
            api_key_id: self.api_key_id,
            new_secret_hash: hash_secret(&secret).unwrap(),
            grace_period: GracePeriodHours::new(grace_hours).unwrap(),
            now,
        })
        .await;
        secret
    }
}

/// An event store that is down.
pub(crate) struct FailingStore;

fn down() -> StoreError {
    StoreError::Unavailable("connection refused".into())
}

#[async_trait::async_trait]
impl EventStore for FailingStore {
    async fn append(
        &self,
        _stream: &StreamId,
        _expected: ExpectedRevision,
        _events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        Err(down().into())
    }

    async fn read_stream(
        &self,
        _stream: &StreamId,
        _from: Revision,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Err(down())
    }

    async fn read_all(
        &self,
        _after: Option<Position>,
        _limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Err(down())
    }

    async fn subscribe_all(&self, _after: Option<Position>) -> Result<EventStream, StoreError> {
        Err(down())
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        Err(down())
    }
}
