use uuid::Uuid;

use super::*;
use crate::decimal::DecimalInput;
use crate::ids::UserId;
use crate::money::BasisPoints;
use crate::testing::{at, given_events, Given};

fn given(events: impl IntoIterator<Item = PartnerEvent>) -> Given<PartnerAggregate> {
    given_events(events)
}

fn admin() -> Actor {
    Actor::Admin {
        user_id: UserId::from_uuid(Uuid::from_u128(1)),
    }
}

fn user() -> Actor {
    Actor::User {
        user_id: UserId::from_uuid(Uuid::from_u128(2)),
    }
}

fn zebu() -> PartnerId {
    PartnerId::parse("ZEBU").unwrap()
}

fn key_id(n: u128) -> ApiKeyId {
    ApiKeyId::from_uuid(Uuid::from_u128(500 + n))
}

fn token(n: u32) -> ApiKeyToken {
    ApiKeyToken::parse(&format!("pk_zebu_live_{n:0>24}")).unwrap()
}

fn hash(salt: &str) -> SecretHash {
    SecretHash::parse(&format!(
        "$argon2id$v=19$m=19456,t=2,p=1${salt}$c2VjcmV0aGFzaA"
    ))
    .unwrap()
}

fn share(platform: u32, partner: u32) -> RevenueShare {
    RevenueShare::new(
        BasisPoints::new(platform).unwrap(),
        BasisPoints::new(partner).unwrap(),
    )
    .unwrap()
}

fn t0() -> DateTime<Utc> {
    at("2026-01-01T00:00:00Z")
}

fn register_cmd(actor: Actor) -> PartnerCommand {
    RegisterPartner {
        actor,
        partner_id: zebu(),
        partner_name: PartnerName::parse("Zebu").unwrap(),
        partner_type: PartnerType::Broker,
        broker_id: BrokerId::parse("ZEBU").unwrap(),
        revenue_share: share(7000, 3000),
        permissions: default_permissions(),
        rate_limits: RateLimits::default(),
        branding: Branding::default(),
        now: t0(),
    }
    .into()
}

fn registered_event() -> PartnerEvent {
    PartnerRegistered {
        partner_id: zebu(),
        partner_name: PartnerName::parse("Zebu").unwrap(),
        partner_type: PartnerType::Broker,
        broker_id: BrokerId::parse("ZEBU").unwrap(),
        revenue_share: share(7000, 3000),
        permissions: default_permissions(),
        rate_limits: RateLimits::default(),
        branding: Branding::default(),
        at: t0(),
    }
    .into()
}

fn issue_cmd(n: u128, key: ApiKeyToken) -> PartnerCommand {
    IssueApiKey {
        actor: admin(),
        api_key_id: key_id(n),
        key,
        secret_hash: hash("c2FsdDE"),
        now: t0(),
    }
    .into()
}

fn issued(n: u128) -> PartnerEvent {
    ApiKeyIssued {
        partner_id: zebu(),
        api_key_id: key_id(n),
        key: token(u32::try_from(n).unwrap()),
        secret_hash: hash("c2FsdDE"),
        status: ApiKeyStatus::Active,
        at: t0(),
    }
    .into()
}

fn with_key() -> Vec<PartnerEvent> {
    vec![registered_event(), issued(1)]
}

fn revoked(from: ApiKeyStatus) -> PartnerEvent {
    ApiKeyRevoked {
        partner_id: zebu(),
        api_key_id: key_id(1),
        from,
        reason: None,
        at: at("2026-03-01T00:00:00Z"),
    }
    .into()
}

fn not_found(what: &'static str) -> DomainError {
    DomainError::NotFound { what }
}

// ------------------------------------------------------------ RegisterPartner

#[test]
fn an_admin_registers_a_partner() {
    let state = given([])
        .when(register_cmd(admin()))
        .then([registered_event()]);
    assert_eq!(state.revenue_share(), Some(share(7000, 3000)));
    assert_eq!(state.permissions(), Some(&default_permissions()));
    assert_eq!(
        state.rate_limits().map(|l| l.requests_per_minute.get()),
        Some(100)
    );
}

#[test]
fn registering_a_partner_twice_is_refused() {
    given([registered_event()])
        .when(register_cmd(admin()))
        .then_err(DomainError::AlreadyExists { what: "partner" });
}

#[test]
fn a_user_cannot_register_a_partner() {
    given([])
        .when(register_cmd(user()))
        .then_err(DomainError::Forbidden);
}

#[test]
fn a_partner_without_permissions_built_in_code_is_refused() {
    let PartnerCommand::RegisterPartner(mut command) = register_cmd(admin()) else {
        unreachable!()
    };
    command.permissions.clear();
    given([])
        .when(command.into())
        .then_err(DomainError::invalid(
            "permissions",
            "must grant at least one permission",
        ));
}

#[test]
fn a_registration_body_takes_the_documented_defaults() {
    let body: RegisterPartnerInput = serde_json::from_value(serde_json::json!({
        "partner_id": "ZEBU",
        "partner_name": "Zebu",
        "partner_type": "BROKER",
        "broker_id": "ZEBU",
        "revenue_share": {"platform_percentage": 70, "partner_percentage": 30}
    }))
    .unwrap();
    let command = RegisterPartner::from_input(admin(), &body, t0()).unwrap();
    assert_eq!(command.permissions, default_permissions());
    assert_eq!(command.rate_limits, RateLimits::default());
    assert_eq!(command.rate_limits.requests_per_day.get(), 10_000);
    assert_eq!(command.branding, Branding::default());
    assert_eq!(command.revenue_share, share(7000, 3000));
}

#[test]
fn a_registration_body_reports_every_broken_rule() {
    let body: RegisterPartnerInput = serde_json::from_value(serde_json::json!({
        "partner_id": "zebu",
        "partner_type": "BANK",
        "broker_id": "ZEBU",
        "revenue_share": {"platform_percentage": 70, "partner_percentage": 20.5},
        "permissions": ["marketplace:read", "admin:all"],
        "rate_limits": {"requests_per_minute": 0},
        "branding": {"custom_logo_url": "http://zebu.in/logo.png"}
    }))
    .unwrap();
    let err = RegisterPartner::from_input(admin(), &body, t0()).unwrap_err();
    let fields: Vec<&str> = err.errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "partner_id",
            "partner_name",
            "partner_type",
            "revenue_share",
            "permissions[1]",
            "rate_limits.requests_per_minute",
            "branding.custom_logo_url",
        ]
    );
}

// ------------------------------------------------------------ IssueApiKey

#[test]
fn an_admin_issues_a_key_that_authenticates_with_its_hash() {
    let state = given([registered_event()])
        .when(issue_cmd(1, token(1)))
        .then([issued(1)]);
    assert_eq!(
        state.key_by_token(token(1).as_str()).map(|k| k.api_key_id),
        Some(key_id(1))
    );
    assert_eq!(state.key_status(&key_id(1)), Some(ApiKeyStatus::Active));
    assert_eq!(
        state.verify_candidates(&key_id(1), t0()),
        vec![hash("c2FsdDE").as_str()]
    );
}

#[test]
fn issuing_a_key_to_an_unregistered_partner_is_refused_as_not_found() {
    given([])
        .when(issue_cmd(1, token(1)))
        .then_err(not_found("partner"));
}

#[test]
fn issuing_a_key_whose_id_is_taken_is_refused() {
    given(with_key())
        .when(issue_cmd(1, token(2)))
        .then_err(DomainError::AlreadyExists { what: "api key" });
}

#[test]
fn issuing_a_key_whose_string_is_taken_is_refused() {
    given(with_key())
        .when(issue_cmd(2, token(1)))
        .then_err(DomainError::AlreadyExists { what: "api key" });
}

#[test]
fn issuing_a_key_named_for_another_partner_is_refused() {
    let foreign = ApiKeyToken::parse("pk_angel_one_live_aaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
    given([registered_event()])
        .when(issue_cmd(1, foreign))
        .then_err(DomainError::invalid("key", "must start with pk_zebu_live_"));
}

#[test]
fn a_user_cannot_issue_a_key() {
    let command = IssueApiKey {
        actor: user(),
        api_key_id: key_id(1),
        key: token(1),
        secret_hash: hash("c2FsdDE"),
        now: t0(),
    };
    given([registered_event()])
        .when(command.into())
        .then_err(DomainError::Forbidden);
}

#[test]
fn key_strings_and_secret_hashes_are_shape_checked() {
    assert_eq!(token(1).partner_segment(), "zebu");
    for bad in [
        "sk_zebu_live_aaaaaaaaaaaaaaaaaaaa",
        "pk_zebu_test_aaaaaaaaaaaaaaaa",
        "pk_ZEBU_live_aaaaaaaaaaaaaaaa",
        "pk_zebu_live_short",
        "pk_zebu_live_aaaaaaaa-aaaaaaaaaaaa",
    ] {
        assert!(ApiKeyToken::parse(bad).is_err(), "{bad}");
    }
    for bad in [
        "",
        "plain-secret",
        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        "$argon2id$v=19$t=2,p=1$c2FsdA$aGFzaA",
        "$argon2id$v=19$m=19456,t=2,p=1$$aGFzaA",
    ] {
        assert!(SecretHash::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(format!("{:?}", hash("c2FsdDE")), "SecretHash(argon2id…)");
}

// ------------------------------------------------------------ UpdatePartnerConfig

#[test]
fn an_admin_changes_the_revenue_share_and_the_full_config_is_recorded() {
    let command = UpdatePartnerConfig {
        actor: admin(),
        partner_name: None,
        revenue_share: Some(share(7500, 2500)),
        permissions: None,
        rate_limits: None,
        branding: None,
        now: at("2026-02-01T00:00:00Z"),
    };
    let state = given(with_key())
        .when(command.into())
        .then([PartnerConfigUpdated {
            partner_id: zebu(),
            partner_name: PartnerName::parse("Zebu").unwrap(),
            revenue_share: share(7500, 2500),
            permissions: default_permissions(),
            rate_limits: RateLimits::default(),
            branding: Branding::default(),
            changed: BTreeSet::from([PartnerConfigField::RevenueShare]),
            at: at("2026-02-01T00:00:00Z"),
        }
        .into()]);
    assert_eq!(state.revenue_share(), Some(share(7500, 2500)));
}

#[test]
fn a_config_update_body_needs_at_least_one_member() {
    let err = UpdatePartnerConfig::from_input(admin(), &UpdatePartnerConfigInput::default(), t0())
        .unwrap_err();
    assert!(err.has_field(""));
    let body = UpdatePartnerConfigInput {
        revenue_share: Some(RevenueShareInput {
            platform_percentage: Some(DecimalInput::from("72.5")),
            partner_percentage: Some(DecimalInput::from("27.5")),
        }),
        ..UpdatePartnerConfigInput::default()
    };
    let command = UpdatePartnerConfig::from_input(admin(), &body, t0()).unwrap();
    assert_eq!(command.revenue_share, Some(share(7250, 2750)));
}

#[test]
fn a_config_update_that_changes_nothing_is_refused() {
    let command = UpdatePartnerConfig {
        actor: admin(),
        partner_name: None,
        revenue_share: None,
        permissions: None,
        rate_limits: None,
        branding: None,
        now: t0(),
    };
    given(with_key())
        .when(command.into())
        .then_err(DomainError::invalid("", NOTHING_TO_UPDATE));
}

#[test]
fn updating_an_unregistered_partner_is_refused_as_not_found() {
    let command = UpdatePartnerConfig {
        actor: admin(),
        partner_name: None,
        revenue_share: Some(share(5000, 5000)),
        permissions: None,
        rate_limits: None,
        branding: None,
        now: t0(),
    };
    given([])
        .when(command.into())
        .then_err(not_found("partner"));
}

#[test]
fn a_user_cannot_update_a_partner() {
    let command = UpdatePartnerConfig {
        actor: user(),
        partner_name: None,
        revenue_share: Some(share(5000, 5000)),
        permissions: None,
        rate_limits: None,
        branding: None,
        now: t0(),
    };
    given(with_key())
        .when(command.into())
        .then_err(DomainError::Forbidden);
}

// ------------------------------------------------------------ SetApiKeyStatus

fn status_cmd(status: ApiKeyStatus) -> PartnerCommand {
    SetApiKeyStatus {
        actor: admin(),
        api_key_id: key_id(1),
        status,
        reason: Some(Reason::parse("chargebacks").unwrap()),
        now: at("2026-02-15T00:00:00Z"),
    }
    .into()
}

fn status_changed(from: ApiKeyStatus, to: ApiKeyStatus) -> PartnerEvent {
    ApiKeyStatusChanged {
        partner_id: zebu(),
        api_key_id: key_id(1),
        from,
        to,
        reason: Some(Reason::parse("chargebacks").unwrap()),
        at: at("2026-02-15T00:00:00Z"),
    }
    .into()
}

#[test]
fn suspending_a_key_stops_it_authenticating() {
    let state = given(with_key())
        .when(status_cmd(ApiKeyStatus::Suspended))
        .then([status_changed(
            ApiKeyStatus::Active,
            ApiKeyStatus::Suspended,
        )]);
    assert!(state.verify_candidates(&key_id(1), t0()).is_empty());
}

#[test]
fn reactivating_a_suspended_key_lets_it_authenticate_again() {
    let state = given(with(
        with_key(),
        [status_changed(
            ApiKeyStatus::Active,
            ApiKeyStatus::Suspended,
        )],
    ))
    .when(status_cmd(ApiKeyStatus::Active))
    .then([status_changed(
        ApiKeyStatus::Suspended,
        ApiKeyStatus::Active,
    )]);
    assert_eq!(state.verify_candidates(&key_id(1), t0()).len(), 1);
}

#[test]
fn setting_the_status_a_key_already_has_records_nothing() {
    given(with_key())
        .when(status_cmd(ApiKeyStatus::Active))
        .then([]);
}

#[test]
fn setting_a_key_to_revoked_revokes_it() {
    let events = given(with_key())
        .when(status_cmd(ApiKeyStatus::Revoked))
        .events();
    assert_eq!(
        events,
        [ApiKeyRevoked {
            partner_id: zebu(),
            api_key_id: key_id(1),
            from: ApiKeyStatus::Active,
            reason: Some(Reason::parse("chargebacks").unwrap()),
            at: at("2026-02-15T00:00:00Z"),
        }
        .into()]
    );
}

#[test]
fn changing_the_status_of_a_revoked_key_is_refused_as_an_invalid_transition() {
    given(with(with_key(), [revoked(ApiKeyStatus::Active)]))
        .when(status_cmd(ApiKeyStatus::Active))
        .then_err(DomainError::InvalidTransition {
            from: "REVOKED",
            to: "ACTIVE",
        });
}

#[test]
fn changing_the_status_of_an_unknown_key_is_refused_as_not_found() {
    given([registered_event()])
        .when(status_cmd(ApiKeyStatus::Suspended))
        .then_err(not_found("api key"));
}

// ------------------------------------------------------------ RotateApiKey

fn rotate_cmd(hours: i64, when: DateTime<Utc>) -> PartnerCommand {
    RotateApiKey {
        actor: admin(),
        api_key_id: key_id(1),
        new_secret_hash: hash("c2FsdDI"),
        grace_period: GracePeriodHours::new(hours).unwrap(),
        now: when,
    }
    .into()
}

fn rotated(hours: u32, when: DateTime<Utc>) -> PartnerEvent {
    ApiKeyRotated {
        partner_id: zebu(),
        api_key_id: key_id(1),
        secret_hash: hash("c2FsdDI"),
        grace_period_hours: GracePeriodHours::new(i64::from(hours)).unwrap(),
        previous_valid_until: (hours > 0)
            .then(|| when + chrono::TimeDelta::hours(i64::from(hours))),
        at: when,
    }
    .into()
}

#[test]
fn rotating_without_grace_stops_the_old_secret_at_once() {
    let when = at("2026-02-01T00:00:00Z");
    let state = given(with_key())
        .when(rotate_cmd(0, when))
        .then([rotated(0, when)]);
    assert_eq!(
        state.verify_candidates(&key_id(1), when),
        vec![hash("c2FsdDI").as_str()]
    );
}

#[test]
fn rotating_with_grace_keeps_the_old_secret_until_the_grace_ends() {
    let when = at("2026-02-01T00:00:00Z");
    let state = given(with_key())
        .when(rotate_cmd(24, when))
        .then([rotated(24, when)]);
    let (new, old) = (hash("c2FsdDI"), hash("c2FsdDE"));
    let both = vec![new.as_str(), old.as_str()];
    assert_eq!(state.verify_candidates(&key_id(1), when), both);
    assert_eq!(
        state.verify_candidates(&key_id(1), at("2026-02-01T23:59:59Z")),
        both
    );
    assert_eq!(
        state.verify_candidates(&key_id(1), at("2026-02-02T00:00:00Z")),
        vec![hash("c2FsdDI").as_str()]
    );
}

#[test]
fn a_grace_period_longer_than_seven_days_cannot_be_asked_for() {
    assert!(GracePeriodHours::new(168).is_ok());
    assert!(GracePeriodHours::new(169).is_err());
    assert!(GracePeriodHours::new(-1).is_err());
}

#[test]
fn rotating_a_revoked_key_is_refused() {
    given(with(with_key(), [revoked(ApiKeyStatus::Active)]))
        .when(rotate_cmd(0, t0()))
        .then_err(DomainError::ApiKeyRevoked);
}

#[test]
fn rotating_an_unknown_key_is_refused_as_not_found() {
    given([registered_event()])
        .when(rotate_cmd(0, t0()))
        .then_err(not_found("api key"));
}

#[test]
fn a_user_cannot_rotate_a_key() {
    let command = RotateApiKey {
        actor: user(),
        api_key_id: key_id(1),
        new_secret_hash: hash("c2FsdDI"),
        grace_period: GracePeriodHours::NONE,
        now: t0(),
    };
    given(with_key())
        .when(command.into())
        .then_err(DomainError::Forbidden);
}

// ------------------------------------------------------------ RevokeApiKey

fn revoke_cmd() -> PartnerCommand {
    RevokeApiKey {
        actor: admin(),
        api_key_id: key_id(1),
        reason: None,
        now: at("2026-03-01T00:00:00Z"),
    }
    .into()
}

#[test]
fn revoking_a_key_stops_it_for_good_even_within_a_rotation_grace() {
    let when = at("2026-02-28T12:00:00Z");
    let state = given(with(with_key(), [rotated(168, when)]))
        .when(revoke_cmd())
        .then([revoked(ApiKeyStatus::Active)]);
    assert!(state
        .verify_candidates(&key_id(1), at("2026-03-01T00:00:00Z"))
        .is_empty());
    assert_eq!(state.key_status(&key_id(1)), Some(ApiKeyStatus::Revoked));
}

#[test]
fn a_suspended_key_can_be_revoked() {
    given(with(
        with_key(),
        [status_changed(
            ApiKeyStatus::Active,
            ApiKeyStatus::Suspended,
        )],
    ))
    .when(revoke_cmd())
    .then([revoked(ApiKeyStatus::Suspended)]);
}

#[test]
fn revoking_a_revoked_key_is_refused_as_an_invalid_transition() {
    given(with(with_key(), [revoked(ApiKeyStatus::Active)]))
        .when(revoke_cmd())
        .then_err(DomainError::InvalidTransition {
            from: "REVOKED",
            to: "REVOKED",
        });
}

#[test]
fn revoking_an_unknown_key_is_refused_as_not_found() {
    given([registered_event()])
        .when(revoke_cmd())
        .then_err(not_found("api key"));
}

#[test]
fn a_user_cannot_revoke_a_key() {
    let command = RevokeApiKey {
        actor: user(),
        api_key_id: key_id(1),
        reason: None,
        now: t0(),
    };
    given(with_key())
        .when(command.into())
        .then_err(DomainError::Forbidden);
}

#[test]
fn the_stream_of_a_partner_is_named_after_its_id() {
    assert_eq!(stream_name(&zebu()), "partner-ZEBU");
}

fn with(
    mut history: Vec<PartnerEvent>,
    more: impl IntoIterator<Item = PartnerEvent>,
) -> Vec<PartnerEvent> {
    history.extend(more);
    history
}
