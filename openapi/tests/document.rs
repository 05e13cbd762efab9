//! The whole OpenAPI document: complete (every registered route, nothing
//! else), valid OpenAPI 3.1, consistent (errors are `Problem`s, tags and
//! path parameters declared), and served with its rendered docs.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;

use actix_web::test as actix_test;
use actix_web::App;
use basketry_command_api::openapi::shape;
use serde_json::Value;

fn doc() -> Value {
    serde_json::from_str(basketry_openapi::document_json()).expect("the document is JSON")
}

/// `(method, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    ops
}

/// `(method, path)` of every route the program registers: the command and
/// query APIs' route tables (which their `configure` functions register),
/// this crate's own routes, and the binary's ([`BINARY_ROUTES`]).
fn registered() -> BTreeSet<(String, String)> {
    let tables = [
        basketry_command_api::routes::endpoints(),
        basketry_query_api::endpoints(),
        basketry_openapi::endpoints(),
    ];
    let mut routes: BTreeSet<(String, String)> = tables
        .iter()
        .flatten()
        .map(|e| (e.method.as_str().to_string(), e.path.to_string()))
        .collect();
    for (method, path) in basketry_openapi::BINARY_ROUTES {
        routes.insert((method.to_string(), path.to_string()));
    }
    routes
}

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    let doc = doc();
    let documented = documented(&doc);
    let registered = registered();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without documentation: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&registered).collect();
    assert!(
        phantom.is_empty(),
        "documented but not registered: {phantom:?}"
    );
    // The command and query routes (docs/reference/api.md) and the operational ones, as far as they exist.
    assert!(registered.len() >= 22 + 15 + 5, "{}", registered.len());
}

#[test]
fn the_document_is_openapi_3_1() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "openapi is {version}");
    assert_eq!(doc["info"]["title"], "Basketry API");
    assert!(doc["jsonSchemaDialect"].is_null() || doc["jsonSchemaDialect"].is_string());
}

/// Validates with the Python package `openapi-spec-validator` (OpenAPI 3.1
/// rules). Skipped, saying so, when Python or the package is missing —
/// unless `BASKETRY_REQUIRE_OPENAPI_VALIDATOR=1`, when that fails the test.
#[test]
fn the_document_validates_with_openapi_spec_validator() {
    const SCRIPT: &str = "\
import json, sys
try:
    from openapi_spec_validator import validate
except ImportError:
    sys.exit(3)
try:
    from openapi_spec_validator import OpenAPIV31SpecValidator as V31
except ImportError:
    V31 = None
spec = json.load(open(sys.argv[1]))
if V31 is None:
    validate(spec)
else:
    validate(spec, cls=V31)
print('valid OpenAPI', spec['openapi'])
";
    let required = std::env::var("BASKETRY_REQUIRE_OPENAPI_VALIDATOR").as_deref() == Ok("1");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, basketry_openapi::document_json()).expect("write the document");
    let skip = |why: &str| {
        assert!(
            !required,
            "BASKETRY_REQUIRE_OPENAPI_VALIDATOR=1 but {why} \
             (pip install openapi-spec-validator)"
        );
        // Straight to stderr, past libtest's capture, so the skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "openapi-spec-validator check skipped: {why} (pip install openapi-spec-validator)"
        );
    };
    let output = match Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&file)
        .output()
    {
        Ok(output) => output,
        Err(e) => return skip(&format!("python3 cannot be run ({e})")),
    };
    if output.status.code() == Some(3) {
        return skip("the Python module openapi_spec_validator is not installed");
    }
    if !output.status.success() {
        // The validator's traceback ends with the reason (and may quote the
        // whole document before it): keep the end.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|l| {
                let cut: String = l.chars().take(400).collect();
                cut + "\n"
            })
            .collect();
        panic!("openapi-spec-validator rejects the document:\n{tail}");
    }
    print!("{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn every_error_answer_is_a_problem() {
    let doc = doc();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                let code: u16 = status.parse().expect("numeric status");
                // The readiness report is the body of /readyz's 503 on purpose.
                if code < 400 || (path == "/readyz" && code == 503) {
                    continue;
                }
                let resolved = shape::resolve(&doc, response);
                let content = resolved["content"].as_object().expect("content");
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{method} {path} {status}"
                );
                let schema = &content["application/problem+json"]["schema"];
                assert_eq!(
                    shape::ref_name(schema),
                    Some("Problem"),
                    "{method} {path} {status}"
                );
            }
        }
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    let props: BTreeSet<&str> = problem["properties"]
        .as_object()
        .expect("Problem properties")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        props,
        BTreeSet::from([
            "type",
            "title",
            "status",
            "detail",
            "code",
            "errors",
            "subscription_id",
            "consistency_token",
            "streams"
        ])
    );
}

#[test]
fn headers_and_security_are_documented() {
    let doc = doc();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("schemes");
    assert_eq!(schemes["bearer_jwt"]["scheme"], "bearer");
    assert_eq!(schemes["partner_key"]["scheme"], "bearer");
    assert_eq!(schemes["partner_secret"]["type"], "apiKey");
    assert_eq!(schemes["partner_secret"]["in"], "header");
    assert_eq!(schemes["partner_secret"]["name"], "X-Partner-Secret");
    let header_names = |op: &Value| -> BTreeSet<String> {
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "header")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect()
    };
    let create = &doc["paths"]["/baskets"]["post"];
    assert!(header_names(create).contains("Idempotency-Key"));
    assert!(create["responses"]["201"]["headers"]["X-Consistency-Token"].is_object());
    let browse = &doc["paths"]["/marketplace/templates"]["get"];
    assert!(header_names(browse).contains("X-Consistency-Token"));
    assert!(browse["responses"]["200"]["headers"]["RateLimit"].is_object());
    assert!(browse["responses"]["200"]["headers"]["RateLimit-Policy"].is_object());
    let limited = shape::resolve(&doc, &browse["responses"]["429"]);
    assert!(limited["headers"]["Retry-After"].is_object());
    let unavailable = shape::resolve(&doc, &browse["responses"]["503"]);
    assert!(unavailable["headers"]["Retry-After"].is_object());
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            assert!(header_names(op).contains("X-Request-Id"), "{method} {path}");
            for (status, response) in op["responses"].as_object().expect("responses") {
                let response = shape::resolve(&doc, response);
                assert!(
                    response["headers"]["X-Request-Id"].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
    }
    let partner = &doc["paths"]["/partner/marketplace/subscribe"]["post"];
    assert_eq!(
        partner["security"],
        serde_json::json!([{"partner_key": [], "partner_secret": []}])
    );
    assert!(partner["responses"]["201"]["headers"]["RateLimit"].is_object());
}

/// Every `$ref` under `node`.
fn refs<'a>(node: &'a Value, out: &mut Vec<&'a str>) {
    match node {
        Value::Object(members) => {
            for (key, value) in members {
                match (key.as_str(), value) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
        assert!(target.is_some(), "dangling reference {r}");
    }
}

#[test]
fn the_document_is_consistent() {
    let doc = doc();
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut operation_ids = BTreeSet::new();
    let mut shapes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        // One spelling per path shape: `/x/{a}` and `/x/{b}` may not both exist.
        let shape: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        assert!(
            shapes.insert(shape),
            "{path} has a twin with other parameter names"
        );
        for (method, op) in item.as_object().expect("path item") {
            let at = format!("{method} {path}");
            let id = op["operationId"].as_str().expect("operationId");
            assert!(
                operation_ids.insert(id.to_string()),
                "{at}: duplicate operationId {id}"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{at}: no summary"
            );
            for tag in op["tags"].as_array().expect("tags") {
                assert!(
                    tags.contains(tag.as_str().unwrap_or("")),
                    "{at}: undeclared tag {tag}"
                );
            }
            let names: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(names, declared, "{at}: path parameters");
            for (media_type, content) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let schema = &content["schema"];
                assert!(
                    shape::check(&doc, schema, &Value::Null).len() == 1,
                    "{at}: a {media_type} body of null is 400, not a valid body"
                );
            }
        }
    }
}

#[test]
fn the_docs_page_shows_every_operation_and_fetches_nothing() {
    let html = basketry_openapi::docs_html();
    let doc = doc();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().expect("operationId");
            let article = html
                .split(&format!("<article class=\"op\" id=\"op-{id}\">"))
                .nth(1)
                .unwrap_or_else(|| panic!("{method} {path}: no section"));
            let article = &article[..article.find("</article>").expect("closed")];
            assert!(
                article.contains(&format!(">{}</span>", method.to_ascii_uppercase())),
                "{method} {path}"
            );
            assert!(
                article.contains(&format!(
                    "<code>{}</code>",
                    basketry_openapi::html::esc(path)
                )),
                "{method} {path}"
            );
            let summary = basketry_openapi::html::esc(op["summary"].as_str().unwrap_or(""));
            assert!(article.contains(&summary), "{method} {path}: summary");
            assert!(article.contains("<b>Auth:</b>"), "{method} {path}: auth");
            assert!(article.contains("<h4>Responses</h4>"), "{method} {path}");
            if op.get("requestBody").is_some() {
                assert!(article.contains("<h4>Request body"), "{method} {path}");
            }
        }
    }
    for name in doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
    {
        assert!(
            html.contains(&format!("id=\"schema-{name}\"")),
            "schema {name}"
        );
    }
    let lower = html.to_ascii_lowercase();
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "@import", " src=", "url(",
    ] {
        assert!(!lower.contains(forbidden), "the page contains {forbidden}");
    }
    assert!(!lower.contains("href=\"http"), "the page links outside");
}

#[actix_web::test]
async fn openapi_json_and_docs_are_served() {
    let app = actix_test::init_service(App::new().configure(basketry_openapi::configure)).await;
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/openapi.json")
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let body: Value = serde_json::from_slice(&actix_test::read_body(response).await).expect("JSON");
    assert_eq!(body, doc());

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/docs").to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
    let body = actix_test::read_body(response).await;
    assert!(body.starts_with(b"<!DOCTYPE html>"));
}
