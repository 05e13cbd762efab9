//! The [`Principal`] extractor: who is calling, from the request headers.
//!
//! * `Authorization: Bearer pk_…` plus `X-Partner-Secret: sk_…` — a partner
//!   key, checked by [`PartnerAuthenticator`];
//! * `Authorization: Bearer <anything else>` — a JWT, checked by
//!   [`JwtVerifier`].
//!
//! The verifiers come from `web::Data<AuthState>`. The principal found is
//! also put in the request's extensions (as [`Principal`] and, for a
//! partner, as [`PartnerPrincipal`]) so later extractions in the same
//! request, and the rate-limit layer, read it without authenticating again.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use basketry_domain::partner::Permission;
use basketry_domain::Actor;
use chrono::{DateTime, Utc};

use super::jwt::{JwtVerifier, Person};
use super::partner::{PartnerAuthenticator, PartnerPrincipal};
use super::AuthError;
use crate::clock::Clock;
use crate::error::EdgeError;

/// The header carrying a partner's secret.
pub const PARTNER_SECRET_HEADER: &str = "x-partner-secret";

/// What the [`Principal`] extractor authenticates with; register it as
/// `web::Data<AuthState>`.
#[derive(Debug, Clone)]
pub struct AuthState {
    /// Verifies people's JWTs.
    pub jwt: JwtVerifier,
    /// Verifies partner keys.
    pub partners: PartnerAuthenticator,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person, by JWT (user, admin, auditor, executor).
    Person(Person),
    /// A partner, by key and secret.
    Partner(PartnerPrincipal),
}

impl Principal {
    /// The person, if a person is calling.
    pub fn person(&self) -> Option<&Person> {
        match self {
            Principal::Person(person) => Some(person),
            Principal::Partner(_) => None,
        }
    }

    /// The partner key, if a partner is calling.
    pub fn partner(&self) -> Option<&PartnerPrincipal> {
        match self {
            Principal::Partner(partner) => Some(partner),
            Principal::Person(_) => None,
        }
    }

    /// The person calling; a partner gets [`AuthError::Forbidden`].
    pub fn require_person(&self) -> Result<&Person, AuthError> {
        self.person().ok_or(AuthError::Forbidden)
    }

    /// An admin (`Admins` group); anyone else gets [`AuthError::Forbidden`].
    pub fn require_admin(&self) -> Result<&Person, AuthError> {
        self.person()
            .filter(|p| p.is_admin())
            .ok_or(AuthError::Forbidden)
    }

    /// An auditor (`Auditors` group) or an admin; anyone else gets
    /// [`AuthError::Forbidden`].
    pub fn require_auditor(&self) -> Result<&Person, AuthError> {
        self.person()
            .filter(|p| p.is_auditor() || p.is_admin())
            .ok_or(AuthError::Forbidden)
    }

    /// An executor (`Executors` group) or an admin; anyone else gets
    /// [`AuthError::Forbidden`].
    pub fn require_executor(&self) -> Result<&Person, AuthError> {
        self.person()
            .filter(|p| p.is_executor())
            .ok_or(AuthError::Forbidden)
    }

    /// A partner key holding `permission`: a person gets
    /// [`AuthError::Forbidden`], a key without it
    /// [`AuthError::MissingPermission`].
    pub fn require_partner_permission(
        &self,
        permission: Permission,
    ) -> Result<&PartnerPrincipal, AuthError> {
        let partner = self.partner().ok_or(AuthError::Forbidden)?;
        if partner.has_permission(permission) {
            Ok(partner)
        } else {
            Err(AuthError::MissingPermission { permission })
        }
    }

    /// The domain actor commands run as: `Admin` for admins, `User` for
    /// other people, `Partner` for partner keys.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Person(person) if person.is_admin() => Actor::Admin {
                user_id: person.user_id,
            },
            Principal::Person(person) => Actor::User {
                user_id: person.user_id,
            },
            Principal::Partner(partner) => Actor::Partner {
                partner_id: partner.partner_id.clone(),
                api_key_id: partner.api_key_id,
            },
        }
    }

    /// A stable key for scoping idempotency keys and rate limits:
    /// `user:<user_id>` or `partner:<api_key_id>` (a key keeps its id across
    /// rotations).
    pub fn principal_key(&self) -> String {
        match self {
            Principal::Person(person) => format!("user:{}", person.user_id),
            Principal::Partner(partner) => format!("partner:{}", partner.api_key_id),
        }
    }
}

/// The only value of header `name`: `None` when absent, `Malformed` when
/// repeated or not visible ASCII.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    value
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| AuthError::Malformed)
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = single_header(headers, &AUTHORIZATION)?.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Authenticates the request with these headers at `now`; the extractor's
/// work, usable from a middleware too.
pub async fn authenticate(
    state: &AuthState,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Principal, AuthError> {
    authenticate_from(state, headers, None, now).await
}

/// [`authenticate`] for a request from `client` (the connection's peer,
/// which the partner failure throttle counts by; `None` when unknown).
pub async fn authenticate_from(
    state: &AuthState,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
    now: DateTime<Utc>,
) -> Result<Principal, AuthError> {
    let token = bearer_token(headers)?;
    if token.starts_with("pk_") {
        let secret_header = HeaderName::from_static(PARTNER_SECRET_HEADER);
        let secret = single_header(headers, &secret_header)?
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Missing)?;
        let partner = state
            .partners
            .authenticate_from(token, secret, client, now)
            .await?;
        Ok(Principal::Partner(partner))
    } else {
        let person = state.jwt.verify(token, now).await?;
        Ok(Principal::Person(person))
    }
}

impl FromRequest for Principal {
    type Error = EdgeError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(principal) = req.extensions().get::<Principal>() {
                return Ok(principal.clone());
            }
            let Some(state) = req.app_data::<web::Data<AuthState>>().cloned() else {
                tracing::error!("AuthState is not registered as app data: refusing every request");
                return Err(AuthError::Unavailable.into());
            };
            // The application's clock, so that credentials expire (tokens,
            // a rotation's grace period) on the same time line the commands
            // that set them were decided on; system time without one.
            let now = req
                .app_data::<web::Data<Clock>>()
                .map_or_else(Utc::now, |clock| clock.now());
            let client = req.peer_addr().map(|a| a.ip());
            let principal = authenticate_from(&state, req.headers(), client, now).await?;
            let mut extensions = req.extensions_mut();
            if let Principal::Partner(partner) = &principal {
                if let Some(usage) = req.app_data::<web::Data<crate::auth::usage::UsageLog>>() {
                    usage.record(partner.api_key_id, now);
                }
                extensions.insert(partner.clone());
            }
            extensions.insert(principal.clone());
            Ok(principal)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use actix_web::test::TestRequest;
    use basketry_domain::{Email, UserId};

    use super::*;
    use crate::auth::jwt::mint_hs256;
    use crate::auth::partner::PartnerAuthConfig;
    use crate::auth::testing::Fixture;

    const SECRET: &[u8] = b"extractor-test-secret-of-32-bytes-or-more";

    fn state(fixture: &Fixture) -> web::Data<AuthState> {
        web::Data::new(AuthState {
            jwt: JwtVerifier::hs256(SECRET).unwrap(),
            partners: PartnerAuthenticator::new(fixture.store(), PartnerAuthConfig::default()),
        })
    }

    fn token(email: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        mint_hs256(SECRET, email, &groups, Duration::from_secs(600), Utc::now()).unwrap()
    }

    async fn extract(req: &HttpRequest) -> Result<Principal, AuthError> {
        match Principal::extract(req).await {
            Ok(principal) => Ok(principal),
            Err(EdgeError::Auth(e)) => Err(e),
            Err(other) => panic!("not an auth error: {other:?}"),
        }
    }

    fn person(email: &str, groups: &[&str]) -> Principal {
        Principal::Person(Person::new(
            Email::parse(email).unwrap(),
            groups
                .iter()
                .map(|g| g.to_string())
                .collect::<BTreeSet<_>>(),
        ))
    }

    #[actix_web::test]
    async fn a_bearer_jwt_makes_a_person_and_an_admin_acts_as_admin() {
        let f = Fixture::new().await;
        let req = TestRequest::default()
            .app_data(state(&f))
            .insert_header((
                AUTHORIZATION,
                format!("Bearer {}", token("Ops@Example.com", &["Admins"])),
            ))
            .to_http_request();
        let principal = extract(&req).await.unwrap();
        let user_id = UserId::from_email(&Email::parse("ops@example.com").unwrap());
        assert_eq!(principal.actor(), Actor::Admin { user_id });
        assert_eq!(principal.principal_key(), format!("user:{user_id}"));
        assert!(principal.require_admin().is_ok());
        assert!(req.extensions().get::<Principal>().is_some());
        assert!(req.extensions().get::<PartnerPrincipal>().is_none());
    }

    #[actix_web::test]
    async fn a_partner_key_and_secret_make_a_partner_found_in_the_extensions() {
        let f = Fixture::new().await;
        let req = TestRequest::default()
            .app_data(state(&f))
            .insert_header((AUTHORIZATION, format!("Bearer {}", f.key)))
            .insert_header((PARTNER_SECRET_HEADER, f.secret.expose()))
            .to_http_request();
        let principal = extract(&req).await.unwrap();
        assert_eq!(
            principal.actor(),
            Actor::Partner {
                partner_id: f.partner_id.clone(),
                api_key_id: f.api_key_id
            }
        );
        assert_eq!(
            principal.principal_key(),
            format!("partner:{}", f.api_key_id)
        );
        let stored = req.extensions().get::<PartnerPrincipal>().cloned();
        assert_eq!(stored.as_ref(), principal.partner());
        // A second extraction in the same request reuses the first.
        assert_eq!(extract(&req).await.unwrap(), principal);
    }

    #[actix_web::test]
    async fn missing_and_malformed_credentials_are_refused() {
        let f = Fixture::new().await;
        let cases: Vec<(Vec<(&str, String)>, AuthError)> = vec![
            (vec![], AuthError::Missing),
            (
                vec![("authorization", format!("Bearer {}", f.key))],
                AuthError::Missing,
            ),
            (
                vec![("authorization", "Basic dXNlcjpwYXNz".into())],
                AuthError::Malformed,
            ),
            (
                vec![("authorization", "Bearer".into())],
                AuthError::Malformed,
            ),
            (
                vec![("authorization", "Bearer a b".into())],
                AuthError::Malformed,
            ),
            (
                vec![("authorization", "Bearer not-a-jwt".into())],
                AuthError::Malformed,
            ),
            (
                vec![
                    ("authorization", format!("Bearer {}", f.key)),
                    (PARTNER_SECRET_HEADER, "sk_zebu_live_wrong".into()),
                ],
                AuthError::WrongSecret,
            ),
        ];
        for (headers, expected) in cases {
            let mut req = TestRequest::default().app_data(state(&f));
            for header in &headers {
                req = req.append_header(header.clone());
            }
            assert_eq!(
                extract(&req.to_http_request()).await,
                Err(expected),
                "{headers:?}"
            );
        }
        // Two Authorization headers are ambiguous.
        let req = TestRequest::default()
            .app_data(state(&f))
            .append_header((
                AUTHORIZATION,
                format!("Bearer {}", token("a@example.com", &[])),
            ))
            .append_header((
                AUTHORIZATION,
                format!("Bearer {}", token("b@example.com", &[])),
            ))
            .to_http_request();
        assert_eq!(extract(&req).await, Err(AuthError::Malformed));
    }

    #[actix_web::test]
    async fn without_auth_state_every_request_is_refused_as_unavailable() {
        let req = TestRequest::default()
            .insert_header((
                AUTHORIZATION,
                format!("Bearer {}", token("a@example.com", &[])),
            ))
            .to_http_request();
        assert_eq!(extract(&req).await, Err(AuthError::Unavailable));
    }

    #[actix_web::test]
    async fn role_helpers_refuse_the_wrong_principal() {
        let f = Fixture::new().await;
        let partner = PartnerAuthenticator::new(f.store(), PartnerAuthConfig::default())
            .authenticate(f.key.as_str(), f.secret.expose(), Utc::now())
            .await
            .map(Principal::Partner)
            .unwrap();
        let user = person("u@example.com", &[]);
        let auditor = person("a@example.com", &["Auditors"]);
        let executor = person("e@example.com", &["Executors"]);
        let admin = person("root@example.com", &["Admins"]);

        assert_eq!(user.require_admin(), Err(AuthError::Forbidden));
        assert_eq!(partner.require_admin(), Err(AuthError::Forbidden));
        assert_eq!(partner.require_person(), Err(AuthError::Forbidden));
        assert_eq!(user.require_auditor(), Err(AuthError::Forbidden));
        assert!(auditor.require_auditor().is_ok() && admin.require_auditor().is_ok());
        assert_eq!(auditor.require_executor(), Err(AuthError::Forbidden));
        assert!(executor.require_executor().is_ok() && admin.require_executor().is_ok());
        assert!(matches!(user.actor(), Actor::User { .. }));

        assert!(partner
            .require_partner_permission(Permission::MarketplaceSubscribe)
            .is_ok());
        assert_eq!(
            partner.require_partner_permission(Permission::SubscriptionsManage),
            Err(AuthError::MissingPermission {
                permission: Permission::SubscriptionsManage
            })
        );
        assert_eq!(
            admin.require_partner_permission(Permission::MarketplaceRead),
            Err(AuthError::Forbidden)
        );
    }
}
