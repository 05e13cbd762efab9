//! The docs page (`GET /docs`): one HTML document rendered on the server
//! from the OpenAPI document — every operation with its method, path,
//! summary, authentication, parameters, request body and responses, then
//! every schema. Inline CSS only: no script, no font, no image, nothing
//! fetched from anywhere.

use std::fmt::Write;

use crate::ordered::Node;

/// The methods of a path item, in the order they are shown.
const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

const CSS: &str = "\
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d232b;margin:0;background:#fafbfc}\
header{background:#14324a;color:#fff;padding:1.2em 2em}header h1{margin:0;font-size:1.6em}\
header a{color:#cfe3f5}.layout{display:flex;align-items:flex-start}\
nav{position:sticky;top:0;max-height:100vh;overflow:auto;width:25em;flex:none;padding:1em;\
border-right:1px solid #e1e4e8;background:#fff;font-size:13px}nav h3{margin:1em 0 .3em;font-size:13px}\
nav ul{list-style:none;margin:0;padding:0}nav li{margin:.15em 0;white-space:nowrap}nav a{color:#1d232b;text-decoration:none}\
main{padding:1em 2em 4em;min-width:0;flex:1}h2{border-bottom:2px solid #14324a;padding-bottom:.2em;margin-top:2em}\
.op{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:.2em 1.2em 1em;margin:1.2em 0}\
.op h3{font-size:1.05em;font-family:ui-monospace,Menlo,Consolas,monospace}\
.m{display:inline-block;min-width:4.2em;text-align:center;border-radius:4px;color:#fff;font:bold 12px/1.8 \
ui-monospace,Menlo,Consolas,monospace;margin-right:.5em}.get{background:#2f7d32}.post{background:#1565c0}\
.put{background:#b26a00}.delete{background:#b3261e}.patch{background:#6a1b9a}\
.summary{font-weight:600}table{border-collapse:collapse;width:100%;margin:.4em 0 1em;font-size:14px}\
th,td{border:1px solid #e1e4e8;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f3f5f7}\
code{font:13px ui-monospace,Menlo,Consolas,monospace;background:#f0f2f4;padding:0 .2em;border-radius:3px}\
.req{color:#b3261e;font-weight:bold}.muted{color:#5b6570;font-size:13px}.schema{margin:1.2em 0}\
h4{margin:1em 0 .2em}td p{margin:0 0 .3em}";

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The little Markdown the descriptions use: paragraphs and `code`.
fn md_inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

fn md(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", md_inline(&p)))
        .collect()
}

fn str_of<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Node::as_str)
}

fn ref_name(node: &Node) -> Option<&str> {
    str_of(node, "$ref").and_then(|r| r.rsplit('/').next())
}

/// Follows `$ref`s within the document.
fn resolve<'a>(doc: &'a Node, mut node: &'a Node) -> &'a Node {
    for _ in 0..32 {
        match str_of(node, "$ref")
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| doc.pointer(p))
        {
            Some(target) => node = target,
            None => break,
        }
    }
    node
}

fn schema_link(name: &str) -> String {
    format!("<a href=\"#schema-{0}\">{0}</a>", esc(name))
}

/// A schema's type, briefly: `string (uuid)`, `array of Basket`,
/// `Marketplace | null`.
fn type_html(schema: &Node) -> String {
    if let Some(name) = ref_name(schema) {
        return schema_link(name);
    }
    for (key, joiner) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " &amp; ")] {
        if let Some(Node::Array(parts)) = schema.get(key) {
            return parts.iter().map(type_html).collect::<Vec<_>>().join(joiner);
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Node::String(t)) => vec![t.as_str()],
        Some(Node::Array(ts)) => ts.iter().filter_map(Node::as_str).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return if schema.get("properties").is_some() {
            "object".into()
        } else {
            "any".into()
        };
    }
    types
        .iter()
        .map(|t| match *t {
            "array" => format!(
                "array of {}",
                schema.get("items").map_or("any".into(), type_html)
            ),
            other => match str_of(schema, "format") {
                Some(format) => format!("{} ({})", esc(other), esc(format)),
                None => esc(other),
            },
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Enumeration values, bounds, pattern and default of a schema.
fn constraints(schema: &Node) -> String {
    let mut notes = Vec::new();
    if let Some(Node::Array(values)) = schema.get("enum") {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(v.as_str().unwrap_or(&v.to_json()))))
            .collect();
        notes.push(format!("one of {}", values.join(", ")));
    }
    for (key, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ] {
        if let Some(n) = schema.get(key) {
            notes.push(format!("{label} {}", esc(&n.to_json())));
        }
    }
    if let Some(pattern) = str_of(schema, "pattern") {
        notes.push(format!("pattern <code>{}</code>", esc(pattern)));
    }
    if let Some(default) = schema.get("default") {
        notes.push(format!("default <code>{}</code>", esc(&default.to_json())));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("<div class=\"muted\">{}</div>", notes.join(" · "))
    }
}

/// The properties of an object schema (`allOf` parts merged), with which
/// are required.
fn properties<'a>(doc: &'a Node, schema: &'a Node) -> (Vec<(&'a str, &'a Node)>, Vec<&'a str>) {
    let schema = resolve(doc, schema);
    let mut props = Vec::new();
    let mut required = Vec::new();
    for part in schema.get("allOf").map(Node::items).unwrap_or_default() {
        let (p, r) = properties(doc, part);
        props.extend(p);
        required.extend(r);
    }
    for (name, prop) in schema
        .get("properties")
        .map(Node::members)
        .unwrap_or_default()
    {
        props.push((name.as_str(), prop));
    }
    required.extend(
        schema
            .get("required")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(Node::as_str),
    );
    (props, required)
}

/// A schema's description, or that of its non-null alternative (a
/// nullable reference carries its description there).
fn description_of(schema: &Node) -> Option<&str> {
    str_of(schema, "description").or_else(|| {
        ["oneOf", "anyOf"]
            .iter()
            .flat_map(|k| schema.get(k).map(Node::items).unwrap_or_default())
            .find_map(|alternative| str_of(alternative, "description"))
    })
}

fn properties_table(doc: &Node, schema: &Node) -> String {
    let (props, required) = properties(doc, schema);
    if props.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("<table><tr><th>Property</th><th>Type</th><th>Description</th></tr>");
    for (name, prop) in props {
        let mark = if required.contains(&name) {
            " <span class=\"req\" title=\"required\">*</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{mark}</td><td>{}</td><td>{}{}</td></tr>",
            esc(name),
            type_html(prop),
            description_of(prop).map(md).unwrap_or_default(),
            constraints(prop),
        );
    }
    out.push_str("</table>");
    out
}

fn security_html(doc: &Node, op: &Node) -> String {
    let label = |scheme: &str| match scheme {
        "bearer_jwt" => "Bearer JWT".to_string(),
        "partner_key" => "partner key".to_string(),
        "partner_secret" => "partner secret".to_string(),
        other => other.to_string(),
    };
    let requirements = op.get("security").or_else(|| doc.get("security"));
    let alternatives: Vec<String> = requirements
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            r.members()
                .iter()
                .map(|(scheme, _)| {
                    format!(
                        "<a href=\"#auth-{0}\">{1}</a>",
                        esc(scheme),
                        esc(&label(scheme))
                    )
                })
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .filter(|a| !a.is_empty())
        .collect();
    if alternatives.is_empty() {
        "none".into()
    } else {
        alternatives.join(" <i>or</i> ")
    }
}

fn parameters_html(op: &Node) -> String {
    let params = op.get("parameters").map(Node::items).unwrap_or_default();
    if params.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr>",
    );
    for p in params {
        let required = matches!(p.get("required"), Some(Node::Bool(true)));
        let schema = p.get("schema").cloned().unwrap_or(Node::Null);
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            esc(str_of(p, "name").unwrap_or("")),
            if required {
                " <span class=\"req\" title=\"required\">*</span>"
            } else {
                ""
            },
            esc(str_of(p, "in").unwrap_or("")),
            type_html(&schema),
            str_of(p, "description").map(md).unwrap_or_default(),
            constraints(&schema),
        );
    }
    out.push_str("</table>");
    out
}

fn request_body_html(doc: &Node, op: &Node) -> String {
    let Some(body) = op.get("requestBody") else {
        return String::new();
    };
    let body = resolve(doc, body);
    let required = matches!(body.get("required"), Some(Node::Bool(true)));
    let mut out = format!(
        "<h4>Request body{}</h4>",
        if required {
            ""
        } else {
            " <span class=\"muted\">(optional)</span>"
        }
    );
    if let Some(description) = str_of(body, "description") {
        out.push_str(&md(description));
    }
    for (media_type, content) in body.get("content").map(Node::members).unwrap_or_default() {
        let schema = content.get("schema").cloned().unwrap_or(Node::Null);
        let _ = write!(
            out,
            "<p><code>{}</code>: {}</p>{}",
            esc(media_type),
            type_html(&schema),
            properties_table(doc, &schema)
        );
    }
    out
}

fn responses_html(doc: &Node, op: &Node) -> String {
    let mut out = String::from(
        "<h4>Responses</h4><table><tr><th>Status</th><th>Description</th><th>Body</th><th>Headers</th></tr>",
    );
    for (status, response) in op.get("responses").map(Node::members).unwrap_or_default() {
        let resolved = resolve(doc, response);
        let body: Vec<String> = resolved
            .get("content")
            .map(Node::members)
            .unwrap_or_default()
            .iter()
            .map(|(media_type, content)| {
                let schema = content.get("schema").cloned().unwrap_or(Node::Null);
                format!("<code>{}</code> {}", esc(media_type), type_html(&schema))
            })
            .collect();
        let headers: Vec<String> = resolved
            .get("headers")
            .map(Node::members)
            .unwrap_or_default()
            .iter()
            .map(|(name, _)| format!("<code>{}</code>", esc(name)))
            .collect();
        let _ = write!(
            out,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(status),
            str_of(resolved, "description").map(md).unwrap_or_default(),
            body.join("<br>"),
            headers.join("<br>"),
        );
    }
    out.push_str("</table>");
    out
}

/// One operation, as it appears in the document.
struct Op<'a> {
    method: &'a str,
    path: &'a str,
    node: &'a Node,
}

impl Op<'_> {
    fn anchor(&self) -> String {
        match str_of(self.node, "operationId") {
            Some(id) => format!("op-{}", esc(id)),
            None => format!("op-{}-{}", self.method, esc(&self.path.replace('/', "-"))),
        }
    }

    fn tag(&self) -> &str {
        self.node
            .get("tags")
            .map(Node::items)
            .and_then(|t| t.first())
            .and_then(Node::as_str)
            .unwrap_or("Other")
    }

    fn badge(&self) -> String {
        format!(
            "<span class=\"m {0}\">{1}</span>",
            esc(self.method),
            esc(&self.method.to_ascii_uppercase())
        )
    }
}

fn operations(doc: &Node) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    for (path, item) in doc.get("paths").map(Node::members).unwrap_or_default() {
        for method in METHODS {
            if let Some(node) = item.get(method) {
                ops.push(Op { method, path, node });
            }
        }
    }
    ops
}

fn operation_html(doc: &Node, op: &Op<'_>) -> String {
    let mut out = format!(
        "<article class=\"op\" id=\"{}\"><h3>{}<code>{}</code></h3>",
        op.anchor(),
        op.badge(),
        esc(op.path)
    );
    if let Some(summary) = str_of(op.node, "summary") {
        let _ = write!(out, "<p class=\"summary\">{}</p>", md_inline(summary));
    }
    if let Some(description) = str_of(op.node, "description") {
        out.push_str(&md(description));
    }
    let _ = write!(out, "<p><b>Auth:</b> {}</p>", security_html(doc, op.node));
    out.push_str(&parameters_html(op.node));
    out.push_str(&request_body_html(doc, op.node));
    out.push_str(&responses_html(doc, op.node));
    out.push_str("</article>");
    out
}

fn schema_html(doc: &Node, name: &str, schema: &Node) -> String {
    let mut out = format!(
        "<div class=\"schema\" id=\"schema-{0}\"><h3>{0}</h3>",
        esc(name)
    );
    if let Some(description) = str_of(schema, "description") {
        out.push_str(&md(description));
    }
    let table = properties_table(doc, schema);
    if table.is_empty() {
        let _ = write!(out, "<p>{}</p>{}", type_html(schema), constraints(schema));
        for key in ["oneOf", "anyOf"] {
            for alternative in schema.get(key).map(Node::items).unwrap_or_default() {
                if let Some(d) = str_of(alternative, "description") {
                    let _ = write!(
                        out,
                        "<p class=\"muted\">{}: {}</p>",
                        type_html(alternative),
                        md_inline(d)
                    );
                }
            }
        }
    } else {
        if schema.get("allOf").is_some() {
            let _ = write!(out, "<p class=\"muted\">{}</p>", type_html(schema));
        }
        out.push_str(&table);
    }
    if let Some(example) = schema.get("example") {
        let _ = write!(
            out,
            "<p class=\"muted\">Example: <code>{}</code></p>",
            esc(&example.to_json())
        );
    }
    out.push_str("</div>");
    out
}

/// The docs page of `doc`.
pub fn render(doc: &Node) -> String {
    let info = doc.get("info").cloned().unwrap_or(Node::Null);
    let title = str_of(&info, "title").unwrap_or("API");
    let version = str_of(&info, "version").unwrap_or("");
    let ops = operations(doc);

    // Tags in the document's order, then any others in order of appearance.
    let mut tags: Vec<(String, Option<String>)> = doc
        .get("tags")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            str_of(t, "name").map(|n| (n.to_string(), str_of(t, "description").map(str::to_string)))
        })
        .collect();
    for op in &ops {
        if !tags.iter().any(|(n, _)| n == op.tag()) {
            tags.push((op.tag().to_string(), None));
        }
    }

    let mut nav = String::from("<nav><h3><a href=\"#intro\">Introduction</a></h3>");
    nav.push_str("<h3><a href=\"#auth\">Authentication</a></h3>");
    let mut body = String::new();
    for (tag, description) in &tags {
        let in_tag: Vec<&Op<'_>> = ops.iter().filter(|o| o.tag() == tag).collect();
        if in_tag.is_empty() {
            continue;
        }
        let anchor = format!("tag-{}", esc(&tag.replace(' ', "-")));
        let _ = write!(nav, "<h3><a href=\"#{anchor}\">{}</a></h3><ul>", esc(tag));
        let _ = write!(body, "<section id=\"{anchor}\"><h2>{}</h2>", esc(tag));
        if let Some(d) = description {
            body.push_str(&md(d));
        }
        for op in in_tag {
            let _ = write!(
                nav,
                "<li><a href=\"#{}\">{}<code>{}</code></a></li>",
                op.anchor(),
                op.badge(),
                esc(op.path)
            );
            body.push_str(&operation_html(doc, op));
        }
        nav.push_str("</ul>");
        body.push_str("</section>");
    }
    nav.push_str("<h3><a href=\"#schemas\">Schemas</a></h3></nav>");

    let mut auth = String::from(
        "<section id=\"auth\"><h2>Authentication</h2><table><tr><th>Scheme</th><th>Kind</th><th>Description</th></tr>",
    );
    for (name, scheme) in doc
        .pointer("/components/securitySchemes")
        .map(Node::members)
        .unwrap_or_default()
    {
        let kind = match (str_of(scheme, "type"), str_of(scheme, "scheme")) {
            (Some("http"), Some(s)) => format!(
                "HTTP {}{}",
                esc(s),
                str_of(scheme, "bearerFormat")
                    .map(|f| format!(" (<code>{}</code>)", esc(f)))
                    .unwrap_or_default()
            ),
            (Some("apiKey"), _) => format!(
                "API key in {} <code>{}</code>",
                esc(str_of(scheme, "in").unwrap_or("")),
                esc(str_of(scheme, "name").unwrap_or(""))
            ),
            (kind, _) => esc(kind.unwrap_or("")),
        };
        let _ = write!(
            auth,
            "<tr id=\"auth-{0}\"><td><code>{0}</code></td><td>{1}</td><td>{2}</td></tr>",
            esc(name),
            kind,
            str_of(scheme, "description").map(md).unwrap_or_default()
        );
    }
    auth.push_str("</table><p>Partner operations need both <code>partner_key</code> and <code>partner_secret</code>.</p></section>");

    let mut schemas = String::from("<section id=\"schemas\"><h2>Schemas</h2>");
    for (name, schema) in doc
        .pointer("/components/schemas")
        .map(Node::members)
        .unwrap_or_default()
    {
        schemas.push_str(&schema_html(doc, name, schema));
    }
    schemas.push_str("</section>");

    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} {version}</title><style>{CSS}</style></head><body>\
         <header><h1>{title} <small>{version}</small></h1>\
         <div>OpenAPI {openapi} · the document: <a href=\"/openapi.json\">/openapi.json</a></div></header>\
         <div class=\"layout\">{nav}<main><section id=\"intro\"><h2>Introduction</h2>{intro}</section>\
         {auth}{body}{schemas}</main></div></body></html>",
        title = esc(title),
        version = esc(version),
        openapi = esc(str_of(doc, "openapi").unwrap_or("")),
        intro = str_of(&info, "description").map(md).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_code_marked() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            md("Use `<b>`\nnow.\n\nNext"),
            "<p>Use <code>&lt;b&gt;</code> now.</p><p>Next</p>"
        );
    }
}
