//! Request ids, request metrics and the Prometheus text of `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::HttpMessage;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Most series [`Metrics`] keeps. Methods and statuses are few and routes
/// are the application's own templates, so real traffic stays far below
/// this; anything past it is counted in the one [`OVERFLOW`] series, so
/// `/metrics` stays bounded whatever clients send (ADR 0011).
pub const MAX_SERIES: usize = 512;

/// The label value of every label of the series that counts requests past
/// [`MAX_SERIES`].
pub const OVERFLOW: &str = "overflow";

/// The methods counted under their own name; any other (extension) method
/// is counted as `OTHER`, so clients cannot mint label values.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The method label of a request: one of the standard nine, or `OTHER`.
pub fn method_label(method: &str) -> &'static str {
    STANDARD_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// The request id of the request being served (also in `X-Request-Id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

#[derive(Default)]
struct Series {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The labels of one series: method (standard or `OTHER`), route template
/// (or `unmatched`) and status, or [`OVERFLOW`] for all three.
type Labels = (&'static str, String, String);

/// Request counts and latency histograms per method, route and status, at
/// most [`MAX_SERIES`] of them.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<Labels, Series>>,
}

impl Metrics {
    /// Counts one request. `method` is folded with [`method_label`]; a new
    /// series past [`MAX_SERIES`] goes to the overflow series instead.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut key: Labels = (method_label(method), route.to_string(), status.to_string());
        // A poisoned lock only means a panic mid-update of a counter.
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        // The overflow series, once made, is the one past MAX_SERIES.
        if !series.contains_key(&key) && series.len() >= MAX_SERIES {
            key = (OVERFLOW, OVERFLOW.to_string(), OVERFLOW.to_string());
        }
        let s = series.entry(key).or_default();
        s.count += 1;
        s.sum_seconds += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    /// The request metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP basketry_http_requests_total HTTP requests served.\n");
        out.push_str("# TYPE basketry_http_requests_total counter\n");
        for ((method, route, status), s) in series.iter() {
            let _ = writeln!(
                out,
                "basketry_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP basketry_http_request_duration_seconds Time to answer HTTP requests.\n",
        );
        out.push_str("# TYPE basketry_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in series.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "basketry_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "basketry_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "basketry_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "basketry_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
}

/// Echoes a valid incoming `X-Request-Id` (1–128 visible ASCII characters)
/// or makes one, puts it on the response and in a tracing span, and records
/// the request in [`Metrics`] under its route pattern (not the raw path, so
/// ids do not explode the label space) and its method folded by
/// [`method_label`].
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // Only a bounded label, never the raw method, reaches logs and metrics.
    let method = method_label(req.method().as_str());
    let metrics = req.app_data::<Data<Metrics>>().cloned();
    let span = tracing::info_span!("request", request_id = %id, %method, path = %req.path());
    let _entered = span.enter();
    let mut res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    tracing::info!(%route, status, elapsed_ms = seconds * 1000.0, "served");
    if let Some(m) = metrics {
        m.observe(method, &route, status, seconds);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(metrics: &Metrics) -> String {
        let mut out = String::new();
        metrics.render(&mut out);
        out
    }

    #[test]
    fn extension_methods_are_counted_as_other() {
        let metrics = Metrics::default();
        for method in ["GET", "PATCH", "BREW", "get", &"X".repeat(2048)] {
            metrics.observe(method, "unmatched", 404, 0.001);
        }
        let text = rendered(&metrics);
        for needle in [
            "basketry_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n",
            "basketry_http_requests_total{method=\"PATCH\",route=\"unmatched\",status=\"404\"} 1\n",
            "basketry_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"404\"} 3\n",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert!(!text.contains("BREW") && !text.contains("XXXX"));
    }

    #[test]
    fn series_past_the_cap_go_to_the_one_overflow_series() {
        let metrics = Metrics::default();
        for i in 0..MAX_SERIES + 100 {
            metrics.observe("GET", &format!("/route/{i}"), 200, 0.001);
        }
        // An existing series keeps counting past the cap.
        metrics.observe("GET", "/route/0", 200, 0.001);
        let text = rendered(&metrics);
        let counters: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("basketry_http_requests_total{"))
            .collect();
        assert_eq!(counters.len(), MAX_SERIES + 1);
        assert!(counters.contains(
            &"basketry_http_requests_total{method=\"overflow\",route=\"overflow\",status=\"overflow\"} 100"
        ));
        assert!(counters.contains(
            &"basketry_http_requests_total{method=\"GET\",route=\"/route/0\",status=\"200\"} 2"
        ));
        assert!(!text.contains(&format!("/route/{}\"", MAX_SERIES)));
    }
}
