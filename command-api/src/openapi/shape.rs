//! Checking JSON against the schemas of an OpenAPI document (as
//! `serde_json::Value`), and building example values from them — what the
//! tests that keep the document honest need:
//!
//! * [`check_response`] — does a real response body have the documented
//!   shape? Objects must have exactly the documented members (none
//!   undocumented, every required one present), recursively, with the
//!   documented types, enumeration values and the formats `uuid`,
//!   `date-time` and `date`;
//! * [`example`] — a value with every documented property, for feeding
//!   documented request schemas to the real deserialisers.
//!
//! It understands the subset of JSON Schema the document uses: `$ref` to
//! `#/components/…`, `allOf` (merged as one object), `oneOf`/`anyOf`,
//! `type` (a name or a list with `"null"`), `enum`, `properties`,
//! `required`, `items`, `additionalProperties` and `format`.

use serde_json::{json, Map, Value};

/// Follows `$ref`s (`#/components/schemas/X`, `#/components/responses/X`)
/// until a schema or response that is not a reference.
pub fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return node;
        };
        let Some(pointer) = reference.strip_prefix('#') else {
            return node;
        };
        match doc.pointer(pointer) {
            Some(target) => node = target,
            None => return node,
        }
    }
    node
}

/// The name a `$ref` points to (`Basket` for `#/components/schemas/Basket`).
pub fn ref_name(node: &Value) -> Option<&str> {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
}

/// The documented response of `method path` for `status`, resolved.
pub fn response<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> Option<&'a Value> {
    let operation = doc
        .get("paths")?
        .get(path)?
        .get(method.to_ascii_lowercase())?;
    let response = operation.get("responses")?.get(status.to_string())?;
    Some(resolve(doc, response))
}

/// The schema of `media_type` in the documented response, if any.
pub fn response_schema<'a>(
    doc: &'a Value,
    method: &str,
    path: &str,
    status: u16,
    media_type: &str,
) -> Option<&'a Value> {
    response(doc, method, path, status)?
        .get("content")?
        .get(media_type)?
        .get("schema")
}

/// Checks a response `body` of `method path` with `status` against the
/// document: the status must be documented, and a JSON body (problem+json
/// for 4xx/5xx) must match its schema. `Err` lists every mismatch.
pub fn check_response(
    doc: &Value,
    method: &str,
    path: &str,
    status: u16,
    body: &Value,
) -> Result<(), String> {
    let media_type = if status >= 400 {
        "application/problem+json"
    } else {
        "application/json"
    };
    if response(doc, method, path, status).is_none() {
        return Err(format!(
            "{method} {path}: status {status} is not documented"
        ));
    }
    let schema = response_schema(doc, method, path, status, media_type).ok_or_else(|| {
        format!("{method} {path}: status {status} documents no {media_type} body")
    })?;
    let errors = check(doc, schema, body);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{method} {path} {status}: the body does not match the document:\n  {}\nbody: {body}",
            errors.join("\n  ")
        ))
    }
}

/// Every way `value` departs from `schema`, as `path: problem` lines.
pub fn check(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check_at(doc, schema, value, "$", &mut errors);
    errors
}

/// An `allOf` merged into one object schema: properties and `required`
/// of every part.
fn merged(doc: &Value, parts: &[Value]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for part in parts {
        let part = resolve(doc, part);
        let part = match part.get("allOf").and_then(Value::as_array) {
            Some(inner) => merged(doc, inner),
            None => part.clone(),
        };
        if let Some(p) = part.get("properties").and_then(Value::as_object) {
            properties.extend(p.clone());
        }
        if let Some(r) = part.get("required").and_then(Value::as_array) {
            required.extend(r.iter().cloned());
        }
    }
    json!({"type": "object", "properties": properties, "required": required})
}

fn types_of(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_matches(t: &str, value: &Value) -> bool {
    match t {
        "null" => value.is_null(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

fn format_matches(format: &str, text: &str) -> bool {
    match format {
        "uuid" => uuid::Uuid::parse_str(text).is_ok() && text.len() == 36,
        "date-time" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "date" => text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        _ => true,
    }
}

fn check_at(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let merged = merged(doc, parts);
        check_at(doc, &merged, value, at, errors);
        return;
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let mut reasons = Vec::new();
            for alternative in alternatives {
                let mut own = Vec::new();
                check_at(doc, alternative, value, at, &mut own);
                if own.is_empty() {
                    return;
                }
                reasons.push(own.join("; "));
            }
            errors.push(format!(
                "{at}: matches none of the {key} alternatives ({})",
                reasons.join(" | ")
            ));
            return;
        }
    }
    let types = types_of(schema);
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        errors.push(format!(
            "{at}: {value} is not of type {}",
            types.join(" or ")
        ));
        return;
    }
    if value.is_null() {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!(
                "{at}: {value} is not one of {}",
                Value::from(allowed.clone())
            ));
        }
    }
    if let (Some(format), Some(text)) =
        (schema.get("format").and_then(Value::as_str), value.as_str())
    {
        if !format_matches(format, text) {
            errors.push(format!("{at}: {text:?} is not a {format}"));
        }
    }
    match value {
        Value::Object(members) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            let open = matches!(
                schema.get("additionalProperties"),
                Some(Value::Bool(true)) | Some(Value::Object(_))
            );
            for (name, member) in members {
                match properties.get(name) {
                    Some(property) => {
                        check_at(doc, property, member, &format!("{at}.{name}"), errors);
                    }
                    None if open => {}
                    None => errors.push(format!("{at}: member `{name}` is not documented")),
                }
            }
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !members.contains_key(name) {
                    errors.push(format!("{at}: required member `{name}` is missing"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_at(doc, item_schema, item, &format!("{at}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// How [`example`] builds values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleOptions {
    /// Use an object schema's own `example` when it has one (a realistic,
    /// valid body); otherwise every object is built property by property,
    /// so each documented property is exercised.
    pub object_examples: bool,
    /// Which alternative of a `oneOf`/`anyOf` to build (the last one when
    /// there are fewer); `null` alternatives are skipped.
    pub alternative: usize,
}

/// A value of `schema` with every documented property, built from the
/// schemas' examples, enumerations, formats and types.
pub fn example(doc: &Value, schema: &Value, options: ExampleOptions) -> Value {
    example_at(doc, schema, options, 0)
}

fn first_example(schema: &Value) -> Option<Value> {
    schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .or_else(|| schema.get("example"))
        .cloned()
}

fn example_at(doc: &Value, schema: &Value, options: ExampleOptions, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    let schema = resolve(doc, schema);
    let is_object = schema.get("properties").is_some() || schema.get("allOf").is_some();
    if !is_object || options.object_examples {
        if let Some(example) = first_example(schema) {
            return example;
        }
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        return example_at(doc, &merged(doc, parts), options, depth + 1);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let candidates: Vec<&Value> = alternatives
                .iter()
                .filter(|a| types_of(resolve(doc, a)) != ["null"])
                .collect();
            if let Some(chosen) = candidates
                .get(options.alternative)
                .or_else(|| candidates.last())
            {
                return example_at(doc, chosen, options, depth + 1);
            }
            return Value::Null;
        }
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = types_of(schema)
        .into_iter()
        .find(|t| *t != "null")
        .unwrap_or(if schema.get("properties").is_some() {
            "object"
        } else {
            "string"
        });
    match kind {
        "object" => {
            let mut members = Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    members.insert(name.clone(), example_at(doc, property, options, depth + 1));
                }
            }
            Value::Object(members)
        }
        "array" => {
            let item = schema
                .get("items")
                .map_or(Value::Null, |i| example_at(doc, i, options, depth + 1));
            json!([item])
        }
        "integer" => schema.get("minimum").cloned().unwrap_or(json!(1)),
        "number" => schema.get("minimum").cloned().unwrap_or(json!(1.5)),
        "boolean" => json!(true),
        _ => match schema.get("format").and_then(Value::as_str) {
            Some("uuid") => json!("0192f3a4-5b6c-7d8e-9f00-112233445566"),
            Some("date-time") => json!("2026-01-05T09:30:00Z"),
            Some("date") => json!("2026-01-05"),
            Some("uri") => json!("https://basketry.example/x"),
            _ => json!("X"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({"components": {"schemas": {
            "Thing": {
                "type": "object",
                "required": ["id", "note"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "note": {"type": ["string", "null"]},
                    "kind": {"type": "string", "enum": ["A", "B"]},
                    "tags": {"type": "array", "items": {"type": "string"}}
                }
            },
            "Wrapped": {"allOf": [
                {"$ref": "#/components/schemas/Thing"},
                {"type": "object", "required": ["extra"], "properties": {"extra": {"type": "integer"}}}
            ]},
            "Maybe": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Thing"}]}
        }}})
    }

    fn thing(d: &Value, name: &str) -> Value {
        d["components"]["schemas"][name].clone()
    }

    #[test]
    fn objects_must_have_exactly_the_documented_members() {
        let d = doc();
        let id = "0192f3a4-5b6c-7d8e-9f00-112233445566";
        let ok = json!({"id": id, "note": null, "kind": "A", "tags": ["x"]});
        assert!(check(&d, &thing(&d, "Thing"), &ok).is_empty());
        let extra = json!({"id": id, "note": null, "surprise": 1});
        assert!(check(&d, &thing(&d, "Thing"), &extra)[0].contains("surprise"));
        let missing = json!({"id": id});
        assert!(check(&d, &thing(&d, "Thing"), &missing)[0].contains("note"));
        let wrong = json!({"id": "nope", "note": 3, "kind": "C"});
        assert_eq!(check(&d, &thing(&d, "Thing"), &wrong).len(), 3);
    }

    #[test]
    fn all_of_merges_and_one_of_takes_any_alternative() {
        let d = doc();
        let id = "0192f3a4-5b6c-7d8e-9f00-112233445566";
        let wrapped = json!({"id": id, "note": "n", "extra": 2});
        assert!(check(&d, &thing(&d, "Wrapped"), &wrapped).is_empty());
        assert!(!check(&d, &thing(&d, "Wrapped"), &json!({"id": id, "note": "n"})).is_empty());
        assert!(check(&d, &thing(&d, "Maybe"), &Value::Null).is_empty());
        assert!(!check(&d, &thing(&d, "Maybe"), &json!({"x": 1})).is_empty());
    }

    #[test]
    fn examples_have_every_property_and_match_their_schema() {
        let d = doc();
        let options = ExampleOptions {
            object_examples: false,
            alternative: 0,
        };
        let e = example(&d, &thing(&d, "Wrapped"), options);
        assert_eq!(e.as_object().unwrap().len(), 5, "{e}");
        assert!(check(&d, &thing(&d, "Wrapped"), &e).is_empty(), "{e}");
    }
}
