//! Partners and their API keys (admins only): registering a partner with
//! its first key, more keys, configuration and key status, secret
//! rotation and revocation. A key's partner is found through the key index
//! stream; everything else is the partner's stream. Every change drops the
//! partner from the credential cache.

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use basketry_domain::api_key_index::{self, ApiKeyIndexAggregate, AssignApiKey};
use basketry_domain::partner::{
    self, ApiKeyStatus, GracePeriodHours, IssueApiKey, PartnerAggregate, PartnerCommand,
    PartnerEvent, PartnerState, RegisterPartner, RegisterPartnerInput, RevokeApiKey, RotateApiKey,
    SecretHash, SetApiKeyStatus, UpdatePartnerConfig, UpdatePartnerConfigInput,
};
use basketry_domain::{ApiKeyId, FieldError, PartnerId, Reason, ValidationErrors};
use basketry_http::shapes;
use basketry_store::{EventStore, StreamId};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    Object, ObjectBuilder, OneOfBuilder, RefBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use super::{admin, path_uuid, stream, to_body};
use crate::auth::credentials::{generate_api_key, generate_secret, hash_secret_async};
use crate::auth::{AuthState, Principal};
use crate::command::{
    execute, execute_many, parse_body, run, AppState, Body, CommandMeta, Executed, Reply,
};
use crate::error::ApiError;
use crate::load::load;
use crate::openapi::{schemas, BodylessErrors, CommandErrors, CreateErrors};
use crate::views;

/// A new key: the key and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedApiKey {
    // The key's own members, as every key is rendered.
    #[serde(flatten)]
    pub key: shapes::ApiKey,
    /// `sk_<partner>_live_<base62>`. Shown once: only its argon2id hash is
    /// kept, and an `Idempotency-Key` replay of this response leaves it out.
    pub api_secret: String,
}

/// A rotated key: the new secret (shown once) and how long the previous
/// one stays valid.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedApiKey {
    // The key's own members, as every key is rendered.
    #[serde(flatten)]
    pub key: shapes::ApiKey,
    /// The new secret, shown once (an `Idempotency-Key` replay of this
    /// response leaves it out).
    pub api_secret: String,
    /// Hours the previous secret keeps working (0: it stopped at once).
    pub grace_period_hours: u32,
}

/// The key named by the path, its partner and the partner's stream (404
/// for a key no partner holds).
async fn partner_of_key(
    store: &dyn EventStore,
    raw: &str,
) -> Result<(ApiKeyId, PartnerId, StreamId), ApiError> {
    let api_key_id = ApiKeyId::from_uuid(path_uuid(raw, "api key")?);
    let index =
        load::<ApiKeyIndexAggregate>(store, &stream(api_key_index::stream_name(&api_key_id))?)
            .await?;
    let partner_id = index
        .state
        .partner_id
        .ok_or(ApiError::NotFound { what: "api key" })?;
    let s = stream(partner::stream_name(&partner_id))?;
    Ok((api_key_id, partner_id, s))
}

/// The key `api_key_id` of the partner in `state`, as admins see it (never
/// the secret or its hash).
fn key_shape(state: &PartnerState, api_key_id: ApiKeyId) -> Result<shapes::ApiKey, ApiError> {
    let p = state
        .partner
        .as_ref()
        .ok_or(ApiError::NotFound { what: "api key" })?;
    let key = p
        .keys
        .get(&api_key_id)
        .ok_or(ApiError::NotFound { what: "api key" })?;
    Ok(views::api_key_shape(p, key))
}

/// A new secret for a key of `partner_id`, and the hash that is kept.
async fn new_secret_hash(partner_id: &PartnerId) -> Result<(String, SecretHash), ApiError> {
    let secret = generate_secret(partner_id);
    let hash = hash_secret_async(&secret).await?;
    Ok((secret.expose().to_string(), hash))
}

/// Register a partner and issue its key
///
/// Admins. Answers the key and its secret; the secret is shown this once.
/// For a partner that exists, issues an additional key (its own id and
/// secret) beside the partner's other keys, even if they are all revoked;
/// the configuration members are then checked but not applied (change them
/// with `PUT /admin/partner-api-keys/{api_key_id}`). Rate limits count all
/// of a partner's keys together.
#[utoipa::path(
    post,
    path = "/admin/partner-api-keys",
    tag = "Partner keys",
    request_body = RegisterPartnerInput,
    responses(
        (status = 201, description = "The key and, once, its secret.", body = IssuedApiKey),
        CreateErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn create_api_key(
    state: Data<AppState>,
    auth: Data<AuthState>,
    req: HttpRequest,
    principal: Principal,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        admin(principal)?;
        let input: RegisterPartnerInput = parse_body(req, &body)?;
        let register = RegisterPartner::from_input(meta.actor.clone(), &input, meta.now)?;
        let partner_id = register.partner_id.clone();
        let api_key_id = ApiKeyId::from_uuid(Uuid::now_v7());
        let key = generate_api_key(&partner_id);
        let (secret, hash) = new_secret_hash(&partner_id).await?;
        let store = state.store.as_ref();
        execute::<ApiKeyIndexAggregate, _>(
            store,
            &stream(api_key_index::stream_name(&api_key_id))?,
            &meta,
            |_| {
                Ok(AssignApiKey {
                    api_key_id,
                    partner_id: partner_id.clone(),
                    now: meta.now,
                }
                .into())
            },
        )
        .await?;
        let s = stream(partner::stream_name(&partner_id))?;
        let issue = IssueApiKey {
            actor: meta.actor.clone(),
            api_key_id,
            key,
            secret_hash: hash,
            now: meta.now,
        };
        // Register and issue in one append: a partner never exists without
        // the key it was created for. A partner that exists gets one more
        // key beside the ones it has (any of them suspended or revoked);
        // its configuration is left as it is (ADR 0015).
        let executed = execute_many::<PartnerAggregate, _>(store, &s, &meta, |loaded| {
            if loaded.exists() {
                Ok(vec![issue.clone().into()])
            } else {
                Ok(vec![register.clone().into(), issue.clone().into()])
            }
        })
        .await?;
        auth.partners.invalidate_partner(&partner_id);
        let body = IssuedApiKey {
            key: key_shape(&executed.state, api_key_id)?,
            api_secret: secret,
        };
        // The secret is shown once: an Idempotency-Key replay answers without it.
        Ok(Reply::created(to_body(&body)?, executed.position).shown_once("api_secret"))
    })
    .await
}

/// Body of `PUT /admin/partner-api-keys/{id}`: partner config and key status.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKeyInput {
    #[serde(flatten)]
    pub(crate) config: UpdatePartnerConfigInput,
    pub(crate) status: Option<String>,
    pub(crate) reason: Option<String>,
}

/// `UpdateKeyInput`'s schema, named `UpdateApiKeyInput`: one object, the
/// domain's `UpdatePartnerConfigInput` schema with this key's `status` and
/// `reason` added to its members (a derived schema would put the flattened
/// configuration in an `allOf` that its closed members make unsatisfiable).
impl utoipa::PartialSchema for UpdateKeyInput {
    #[allow(deprecated)] // `example`: as every other request member states it.
    fn schema() -> RefOr<Schema> {
        let status = OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(
                RefBuilder::new()
                    .ref_location_from_schema_name(ApiKeyStatus::name())
                    .description(Some(
                        "A new status for this key: `SUSPENDED`, back to `ACTIVE`, or\n\
                         `REVOKED` (final).",
                    )),
            );
        let reason = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some("Why the status changes, 1–500 characters."))
            .example(Some(serde_json::json!("Contract paused")))
            .max_length(Some(500))
            .min_length(Some(1));
        let mut schema = match UpdatePartnerConfigInput::schema() {
            RefOr::T(Schema::Object(object)) => object,
            // The derived schema of a struct is an object.
            _ => Object::new(),
        };
        schema.description = Some(
            "`PUT /admin/partner-api-keys/{api_key_id}`: the partner's configuration\n\
             (the domain's `UpdatePartnerConfigInput`: objects given replace the old\n\
             ones whole) and this key's status; at least one member."
                .to_string(),
        );
        schema
            .properties
            .insert("status".to_string(), status.into());
        schema
            .properties
            .insert("reason".to_string(), reason.into());
        RefOr::T(Schema::Object(schema))
    }
}

impl ToSchema for UpdateKeyInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "UpdateApiKeyInput".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        // The configuration's members are inlined; what they refer to is not.
        UpdatePartnerConfigInput::schemas(schemas);
        schemas.push((ApiKeyStatus::name().into_owned(), ApiKeyStatus::schema()));
    }
}

/// Update a partner's configuration or a key's status
///
/// Admins. Configuration members replace the partner's (objects whole);
/// `status` suspends, reactivates or revokes this key. 409
/// `api_key_revoked` once revoked.
#[utoipa::path(
    put,
    path = "/admin/partner-api-keys/{api_key_id}",
    tag = "Partner keys",
    params(
        ("api_key_id" = Uuid, Path, description = "The API key id."),
    ),
    request_body = UpdateKeyInput,
    responses(
        (status = 200, description = "The key as it now is (never the secret).", body = schemas::ApiKey),
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn update_api_key(
    state: Data<AppState>,
    auth: Data<AuthState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        admin(principal)?;
        let input: UpdateKeyInput = parse_body(req, &body)?;
        let store = state.store.as_ref();
        let (api_key_id, partner_id, s) = partner_of_key(store, &path).await?;
        let config_given = input.config != UpdatePartnerConfigInput::default();
        let mut commands: Vec<PartnerCommand> = Vec::new();
        let mut errors = Vec::new();
        if config_given || input.status.is_none() {
            match UpdatePartnerConfig::from_input(meta.actor.clone(), &input.config, meta.now) {
                Ok(c) => commands.push(c.into()),
                Err(e) => errors.extend(e.0),
            }
        }
        let reason = match input.reason.as_deref().map(Reason::parse).transpose() {
            Ok(r) => r,
            Err(e) => {
                errors.push(FieldError {
                    field: "reason".into(),
                    message: e.to_string(),
                });
                None
            }
        };
        if let Some(status) = input.status.as_deref() {
            match ApiKeyStatus::parse(status) {
                Ok(ApiKeyStatus::Revoked) => commands.push(
                    RevokeApiKey {
                        actor: meta.actor.clone(),
                        api_key_id,
                        reason: reason.clone(),
                        now: meta.now,
                    }
                    .into(),
                ),
                Ok(status) => commands.push(
                    SetApiKeyStatus {
                        actor: meta.actor.clone(),
                        api_key_id,
                        status,
                        reason: reason.clone(),
                        now: meta.now,
                    }
                    .into(),
                ),
                Err(e) => errors.push(FieldError {
                    field: "status".into(),
                    message: e.to_string(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(ValidationErrors(errors).into());
        }
        let executed = execute_all(store, &s, &meta, &commands).await?;
        auth.partners.invalidate_partner(&partner_id);
        Ok(Reply::ok(
            to_body(&key_shape(&executed.state, api_key_id)?)?,
            executed.position,
        ))
    })
    .await
}

/// Decides several commands on an existing partner's stream and appends
/// their events together; a partner that does not exist is 404.
async fn execute_all(
    store: &dyn EventStore,
    s: &StreamId,
    meta: &CommandMeta,
    commands: &[PartnerCommand],
) -> Result<Executed<PartnerState, PartnerEvent>, ApiError> {
    execute_many::<PartnerAggregate, _>(store, s, meta, |loaded| {
        if !loaded.exists() {
            return Err(ApiError::NotFound { what: "api key" });
        }
        Ok(commands.to_vec())
    })
    .await
}

/// Body of `POST /admin/partner-api-keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateInput {
    /// Hours the previous secret keeps working, 0–168; 0 when absent.
    #[schema(minimum = 0, maximum = 168, example = 24)]
    pub(crate) grace_period_hours: Option<i64>,
}

/// Rotate a key's secret
///
/// Admins. Issues a new secret, shown once. The previous one stops at once,
/// or after `grace_period_hours` (at most 168).
#[utoipa::path(
    post,
    path = "/admin/partner-api-keys/{api_key_id}/rotate",
    tag = "Partner keys",
    params(
        ("api_key_id" = Uuid, Path, description = "The API key id."),
    ),
    request_body(content = Option<RotateInput>, description = "An optional grace period."),
    responses(
        (status = 200, description = "The key with its new secret.", body = RotatedApiKey),
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn rotate_api_key(
    state: Data<AppState>,
    auth: Data<AuthState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        admin(principal)?;
        let input: RotateInput = parse_body(req, &body)?;
        let grace = GracePeriodHours::new(input.grace_period_hours.unwrap_or(0))
            .map_err(|e| ValidationErrors::single("grace_period_hours", e.to_string()))?;
        let store = state.store.as_ref();
        let (api_key_id, partner_id, s) = partner_of_key(store, &path).await?;
        let (secret, hash) = new_secret_hash(&partner_id).await?;
        let command: PartnerCommand = RotateApiKey {
            actor: meta.actor.clone(),
            api_key_id,
            new_secret_hash: hash,
            grace_period: grace,
            now: meta.now,
        }
        .into();
        let executed = execute_all(store, &s, &meta, &[command]).await?;
        auth.partners.invalidate_partner(&partner_id);
        let body = RotatedApiKey {
            key: key_shape(&executed.state, api_key_id)?,
            api_secret: secret,
            grace_period_hours: grace.get(),
        };
        // The new secret is shown once, like the first.
        Ok(Reply::ok(to_body(&body)?, executed.position).shown_once("api_secret"))
    })
    .await
}

/// Revoke a key
///
/// Admins. Final: the key never authenticates again. Any body is ignored.
#[utoipa::path(
    delete,
    path = "/admin/partner-api-keys/{api_key_id}",
    tag = "Partner keys",
    params(
        ("api_key_id" = Uuid, Path, description = "The API key id."),
    ),
    responses(
        (status = 200, description = "The key, revoked (never the secret).", body = schemas::ApiKey),
        BodylessErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn revoke_api_key(
    state: Data<AppState>,
    auth: Data<AuthState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, _| async move {
        admin(principal)?;
        let store = state.store.as_ref();
        let (api_key_id, partner_id, s) = partner_of_key(store, &path).await?;
        let command: PartnerCommand = RevokeApiKey {
            actor: meta.actor.clone(),
            api_key_id,
            reason: None,
            now: meta.now,
        }
        .into();
        let executed = execute_all(store, &s, &meta, &[command]).await?;
        auth.partners.invalidate_partner(&partner_id);
        Ok(Reply::ok(
            to_body(&key_shape(&executed.state, api_key_id)?)?,
            executed.position,
        ))
    })
    .await
}
