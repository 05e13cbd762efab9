//! `/metrics` under a hostile client: the program started as `basketry
//! serve` starts it, flooded with made-up HTTP methods over raw TCP.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::Stores;

/// Requests in the flood, and the length of each one's method.
const FLOOD: usize = 2_000;
const METHOD_LEN: usize = 2_048;

/// Sends `count` requests `XXXX…1 /nope HTTP/1.1`, each with a fresh random
/// extension method of about 2 KB, one connection each, and reads each
/// answer to the end.
async fn flood(port: u16, count: usize) {
    for _ in 0..count {
        let mut method: String = {
            let mut rng = rand::thread_rng();
            (0..METHOD_LEN - 1)
                .map(|_| char::from(rng.gen_range(b'A'..=b'Z')))
                .collect()
        };
        method.push('1');
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let request =
            format!("{method} /nope HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
        socket
            .write_all(request.as_bytes())
            .await
            .expect("send the request");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), socket.read_to_end(&mut answer))
            .await
            .expect("an answer within 15 s")
            .expect("read the answer");
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
}

/// A strict reading of the Prometheus text exposition format (0.0.4),
/// independent of the code that writes it: every line is a comment, a
/// `# HELP`/`# TYPE` line or a sample `name{label="value",…} number`; every
/// sample belongs to a family declared by an earlier `# TYPE`; no sample
/// (name and labels) appears twice. Returns each sample's value.
fn parse_exposition(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    fn is_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:.200}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(is_name(name, true), "{}", at());
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{}",
                at()
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "family declared twice: {}",
                at()
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(is_name(name, true), "{}", at());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        // name, optional {labels}, value.
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("{}", at()));
        let name = &line[..name_end];
        assert!(is_name(name, true), "bad metric name: {}", at());
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            loop {
                // label name up to '='
                let start = chars
                    .peek()
                    .map(|(i, _)| *i)
                    .unwrap_or_else(|| panic!("{}", at()));
                if body[start..].starts_with('}') {
                    chars.next();
                    break;
                }
                let eq = body[start..]
                    .find('=')
                    .unwrap_or_else(|| panic!("{}", at()))
                    + start;
                let label = &body[start..eq];
                assert!(is_name(label, false), "bad label name {label:?}: {}", at());
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{}", at());
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => panic!("bad escape: {}", at()),
                        },
                        Some('\n') | None => panic!("unterminated label value: {}", at()),
                        Some(c) => value.push(c),
                    }
                }
                labels.push((label.to_string(), value));
                match chars.next().map(|(_, c)| c) {
                    Some(',') => {}
                    Some('}') => break,
                    _ => panic!("expected , or }}: {}", at()),
                }
            }
            let end = chars.peek().map_or(body.len(), |(i, _)| *i);
            rest = &body[end..];
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no value: {}", at()));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {}", at())),
        };
        let family = [
            name.strip_suffix("_bucket"),
            name.strip_suffix("_sum"),
            name.strip_suffix("_count"),
        ]
        .into_iter()
        .flatten()
        .find(|f| types.get(*f).map(String::as_str) == Some("histogram"))
        .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample without a # TYPE: {}",
            at()
        );
        let names: BTreeSet<&String> = labels.iter().map(|(k, _)| k).collect();
        assert_eq!(names.len(), labels.len(), "label repeated: {}", at());
        assert!(
            samples.insert((name.to_string(), labels), value).is_none(),
            "sample repeated: {}",
            at()
        );
    }
    samples
}

#[tokio::test]
async fn a_flood_of_made_up_methods_leaves_metrics_small_and_parseable() {
    let stores = Stores::new().await;
    let base = support::serve_in_process(&stores).await;
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let http = reqwest::Client::new();
    let metrics = || async {
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    };
    let before = metrics().await;

    // Four clients at once, FLOOD requests in all.
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(flood(port, FLOOD / 4)))
        .collect();
    for c in clients {
        c.await.expect("flood client");
    }

    let after = metrics().await;
    eprintln!(
        "/metrics: {} bytes before the flood, {} after",
        before.len(),
        after.len()
    );
    assert!(
        after.len() < 64 * 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    let samples = parse_exposition(&after);
    // Every made-up method was counted, all in one series.
    let other: Vec<_> = samples
        .iter()
        .filter(|((name, labels), _)| {
            name == "basketry_http_requests_total"
                && labels.contains(&("method".into(), "OTHER".into()))
        })
        .collect();
    assert_eq!(other.len(), 1, "{other:?}");
    let ((_, labels), count) = other[0];
    assert!(
        labels.contains(&("route".into(), "unmatched".into())),
        "{labels:?}"
    );
    assert_eq!(*count, FLOOD as f64);
    // The other families are still there.
    for family in [
        "basketry_http_request_duration_seconds_count",
        "basketry_projector_lag_events",
    ] {
        assert!(
            samples.keys().any(|(name, _)| name == family),
            "{family} missing from:\n{after}"
        );
    }
}
