//! The command API's request parsers never panic, whatever bytes arrive:
//! the body reader and JSON parser (`Body`, `parse_body`), the
//! `Idempotency-Key` check and request fingerprint, partner credential
//! headers (`Authorization: Bearer pk_…` with `X-Partner-Secret`), the
//! partner id read out of a key, and JWT parsing (header peek, signature,
//! claims). Each gives a value or its closed error type.

use std::sync::{Arc, OnceLock};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use actix_web::FromRequest;
use basketry_command_api::auth::extract::authenticate;
use basketry_command_api::auth::{
    partner_id_of_key, AuthError, AuthState, JwtVerifier, PartnerAuthConfig, PartnerAuthenticator,
};
use basketry_command_api::command::{parse_body, Body, MAX_BODY_BYTES};
use basketry_command_api::error::ApiError;
use basketry_command_api::limits::fingerprint;
use basketry_domain::basket::{BasketInput, MarketplaceConfigInput, StrategyInput};
use basketry_domain::partner::{RegisterPartnerInput, UpdatePartnerConfigInput};
use basketry_domain::subscription::AllocationInput;
use basketry_http::IdempotencyKey;
use basketry_store::memory::MemoryStore;
use chrono::Utc;
use proptest::prelude::*;
use serde_json::Value;

const SECRET: &[u8] = b"parser-test-secret-that-is-at-least-32-bytes";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn auth_state() -> &'static AuthState {
    static STATE: OnceLock<AuthState> = OnceLock::new();
    STATE.get_or_init(|| {
        let store = Arc::new(MemoryStore::new());
        AuthState {
            jwt: JwtVerifier::hs256(SECRET).expect("verifier"),
            partners: PartnerAuthenticator::new(store, PartnerAuthConfig::default()),
        }
    })
}

/// Bytes that look like JSON often enough to go deep into the parser.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..512),
        2 => "[\\[\\]{}\",:0-9a-zA-Z_.eE+\\- \\\\]{0,256}".prop_map(String::into_bytes),
        1 => (1usize..200_000).prop_map(|n| vec![b'['; n]),
        1 => (0usize..3_000).prop_map(|n| format!("{{\"name\":{}1{}}}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        1 => prop::sample::select(vec![
            r#"{"name":"x","category":"INCOME","strategies":[{"legs":[{"lots":1e400}]}]}"#,
            r#"{"lot_multiplier":"NaN"}"#,
            r#"{"name":"\ud800"}"#,
            r#"{"name":"a\u0000b"}"#,
            r#"{"strategies":[{"legs":[{"lots":18446744073709551616}]}]}"#,
            r#"{"revenue_share":{"platform_percentage":1e308,"partner_percentage":-1e308}}"#,
            "\u{feff}{}",
            "",
            "   ",
            "null",
        ]).prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        3 => Just(Some(b"application/json".to_vec())),
        1 => Just(None),
        1 => prop::sample::select(vec![
            "application/problem+json", "APPLICATION/JSON; charset=utf-8", "text/plain",
            "application/", "+json", ";", "application/json;;;", "multipart/form-data; boundary=x",
        ]).prop_map(|s| Some(s.as_bytes().to_vec())),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
    ]
}

fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

/// Parses `body` as every body type the routes read; each is a value or an
/// `ApiError` of the 4xx kinds a body can cause.
fn parse_everything(content_type: Option<&[u8]>, body: &[u8]) -> Result<(), TestCaseError> {
    let mut request = TestRequest::post();
    if let Some(ct) = content_type.and_then(header_value) {
        request = request.insert_header(("content-type", ct));
    }
    let req = request.to_http_request();
    let bytes = actix_web::web::Bytes::copy_from_slice(body);
    fn check<T: serde::de::DeserializeOwned>(
        req: &actix_web::HttpRequest,
        bytes: &actix_web::web::Bytes,
    ) -> Result<(), TestCaseError> {
        match parse_body::<T>(req, bytes) {
            Ok(_) => Ok(()),
            Err(
                ApiError::BadRequest { .. }
                | ApiError::PayloadTooLarge
                | ApiError::UnsupportedMediaType,
            ) => Ok(()),
            Err(other) => Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
    }
    check::<Value>(&req, &bytes)?;
    check::<BasketInput>(&req, &bytes)?;
    check::<StrategyInput>(&req, &bytes)?;
    check::<MarketplaceConfigInput>(&req, &bytes)?;
    check::<RegisterPartnerInput>(&req, &bytes)?;
    check::<UpdatePartnerConfigInput>(&req, &bytes)?;
    check::<Vec<AllocationInput>>(&req, &bytes)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn body_parsing_never_panics(ct in content_type(), body in body_bytes()) {
        parse_everything(ct.as_deref(), &body)?;
    }

    #[test]
    fn the_body_reader_refuses_more_than_64_kib_and_never_panics(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            (MAX_BODY_BYTES - 2..MAX_BODY_BYTES + 3).prop_map(|n| vec![b' '; n]),
        ],
        declared in prop::option::of(prop_oneof![
            Just("0".to_string()), Just("-1".to_string()), Just("18446744073709551616".to_string()),
            Just((MAX_BODY_BYTES + 1).to_string()), "[0-9a-z ]{0,24}",
        ]),
    ) {
        let mut request = TestRequest::post().set_payload(body.clone());
        if let Some(declared) = &declared {
            if let Some(v) = header_value(declared.as_bytes()) {
                request = request.insert_header(("content-length", v));
            }
        }
        let (req, mut payload) = request.to_http_parts();
        let read = runtime().block_on(Body::from_request(&req, &mut payload));
        match read {
            Ok(Body(bytes)) => prop_assert!(bytes.len() <= MAX_BODY_BYTES),
            Err(ApiError::PayloadTooLarge) => {}
            Err(ApiError::BadRequest { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
        if body.len() > MAX_BODY_BYTES {
            prop_assert!(read_is_refused(&body));
        }
    }

    #[test]
    fn idempotency_keys_and_fingerprints_never_panic(
        key in prop_oneof![".{0,300}", "[ -~]{250,260}"],
        method in "[A-Z]{0,8}",
        path in ".{0,64}",
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let valid = IdempotencyKey::parse(&key).is_ok();
        let visible = !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic());
        prop_assert!(!valid || visible, "{key:?} accepted");
        let a = fingerprint(&method, &path, &body);
        prop_assert_eq!(a, fingerprint(&method, &path, &body));
    }

    #[test]
    fn partner_and_jwt_credentials_never_panic(
        authorization in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            "(Bearer|bearer|BEARER|Basic|) {0,2}(pk_|sk_|ey)?[A-Za-z0-9_.\\-]{0,80}".prop_map(String::into_bytes),
            "Bearer pk_[a-z]{0,12}_(live|test)_[A-Za-z0-9]{0,40}".prop_map(String::into_bytes),
        ],
        secret in prop::option::of(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "sk_[a-z]{0,8}_live_[A-Za-z0-9]{0,60}".prop_map(String::into_bytes),
        ]),
        repeat in any::<bool>(),
    ) {
        let mut headers = HeaderMap::new();
        if let Some(v) = header_value(&authorization) {
            headers.append(HeaderName::from_static("authorization"), v.clone());
            if repeat {
                headers.append(HeaderName::from_static("authorization"), v);
            }
        }
        if let Some(v) = secret.as_deref().and_then(header_value) {
            headers.append(HeaderName::from_static("x-partner-secret"), v);
        }
        let outcome = runtime().block_on(authenticate(auth_state(), &headers, Utc::now()));
        // Nobody is registered and no token is signed: nothing passes.
        prop_assert!(outcome.is_err());
        let _ = outcome.map_err(|e: AuthError| e.code());
        let _ = partner_id_of_key(&String::from_utf8_lossy(&authorization));
    }

    #[test]
    fn structured_jwts_never_panic(
        header in prop_oneof![
            prop::sample::select(vec![
                r#"{"alg":"HS256"}"#, r#"{"alg":"none"}"#, r#"{"alg":"RS256","kid":"x"}"#,
                r#"{"alg":"ES256"}"#, r#"{"alg":"HS256","crit":[]}"#, r#"{"alg":1}"#, r#"{}"#,
                r#"[]"#, r#"{"alg":"HS256","kid":null,"jku":"http://evil"}"#,
            ]).prop_map(str::to_owned),
            ".{0,40}",
        ],
        claims in prop_oneof![
            prop::sample::select(vec![
                r#"{"email":"a@b.co","exp":1e400}"#, r#"{"email":"a@b.co","exp":-1}"#,
                r#"{"email":"a@b.co","exp":18446744073709551616}"#,
                r#"{"email":"a@b.co","exp":4102444800,"nbf":"x"}"#,
                r#"{"email":["a@b.co"],"exp":4102444800}"#,
                r#"{"email":"a@b.co","exp":4102444800,"groups":{"Admins":true}}"#,
                r#"{"email":"a@b.co","exp":4102444800,"aud":[1,2]}"#,
            ]).prop_map(str::to_owned),
            ".{0,60}",
        ],
        signature in "[A-Za-z0-9_\\-]{0,90}",
    ) {
        let token = format!("{}.{}.{signature}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let verdict = runtime().block_on(auth_state().jwt.verify(&token, Utc::now()));
        prop_assert!(verdict.is_err(), "an unsigned token passed: {token}");
    }
}

/// A body over the limit is refused whether or not it declares its length.
fn read_is_refused(body: &[u8]) -> bool {
    let (req, mut payload) = TestRequest::post()
        .set_payload(body.to_vec())
        .to_http_parts();
    matches!(
        runtime().block_on(Body::from_request(&req, &mut payload)),
        Err(ApiError::PayloadTooLarge)
    )
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
