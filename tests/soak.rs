//! Mixed partner traffic at a steady rate against the real `basketry
//! serve`, with latency and the server's memory recorded per window.
//!
//! In CI it runs briefly (`BASKETRY_SOAK_SECONDS`, default 20 s at 40
//! requests/s) and checks that no request failed. The load run of
//! `docs/reliability.md` is the same test for ten minutes in a release
//! build:
//!
//! ```sh
//! BASKETRY_SOAK_SECONDS=600 BASKETRY_SOAK_RATE=200 \
//!   cargo test --release -p basketry --test soak -- --nocapture
//! ```
//!
//! Requests are scheduled open-loop (one every 1/rate s whether or not the
//! previous ones have answered) and each latency is measured from its
//! scheduled time, so a stalled server shows as latency rather than as a
//! lower rate.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Partner, Server, Stores};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One request's outcome.
struct Sample {
    window: usize,
    latency: Duration,
    ok: bool,
    what: String,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Browse,
    Subscribe,
    Pause,
    Resume,
    Cancel,
    ReadOne,
    Ledger,
}

impl Op {
    /// The traffic mix, per 20 requests.
    fn of(n: usize) -> Op {
        match n % 20 {
            0..=6 => Op::Browse,
            7..=10 => Op::Subscribe,
            11 | 12 => Op::Pause,
            13 | 14 => Op::Resume,
            15 => Op::Cancel,
            16 | 17 => Op::ReadOne,
            _ => Op::Ledger,
        }
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    partner: &Partner,
    template: &str,
    subs: &Mutex<Vec<String>>,
    op: Op,
    n: usize,
) -> Result<(), String> {
    let pick = || {
        let subs = subs.lock().unwrap_or_else(|p| p.into_inner());
        (!subs.is_empty()).then(|| subs[n.wrapping_mul(7919) % subs.len()].clone())
    };
    let req = match op {
        Op::Browse => http.get(format!("{base}/marketplace/templates?limit=20")),
        Op::Subscribe => http
            .post(format!("{base}/partner/marketplace/subscribe"))
            .header("Idempotency-Key", format!("soak-{n}"))
            .json(
                &json!({"template_id": template, "user_email": format!("soak{n}@example.com"),
                          "broker_client_id": "C1", "auto_link_broker": true, "lot_multiplier": 1}),
            ),
        Op::Pause | Op::Resume | Op::Cancel | Op::ReadOne => {
            let Some(id) = pick() else { return Ok(()) };
            match op {
                Op::Pause => http.put(format!("{base}/partner/subscriptions/{id}/pause")),
                Op::Resume => http.put(format!("{base}/partner/subscriptions/{id}/resume")),
                Op::Cancel => http.delete(format!("{base}/partner/subscriptions/{id}")),
                _ => http.get(format!("{base}/partner/subscriptions/{id}")),
            }
        }
        Op::Ledger => http.get(format!("{base}/partner/ledger?limit=20")),
    };
    let resp = partner
        .auth(req)
        .send()
        .await
        .map_err(|e| format!("{op:?}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|e| format!("{op:?}: {e}"))?;
    // 409: a pause of a paused subscription, a resume of an active one,
    // anything on a cancelled one: refusals the mix provokes on purpose.
    let expected = match op {
        Op::Subscribe => status == 201,
        Op::Pause | Op::Resume | Op::Cancel => status == 200 || status == 409,
        _ => status == 200,
    };
    if !expected {
        return Err(format!("{op:?}: {status} {body}"));
    }
    if let (Op::Subscribe, Ok(v)) = (op, serde_json::from_str::<serde_json::Value>(&body)) {
        if let Some(id) = v["subscription_id"].as_str() {
            subs.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(id.to_string());
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_mixed_traffic_answers_every_request_as_expected() {
    let seconds = env_u64("BASKETRY_SOAK_SECONDS", 20);
    let rate = env_u64("BASKETRY_SOAK_RATE", 40).max(1);
    let window_secs = env_u64("BASKETRY_SOAK_WINDOW", (seconds / 10).max(2));

    let stores = Stores::new().await;
    let server = Server::start(&stores, support::free_port(), &[]).await;
    let base = server.base();
    let pid = server.pid().expect("running");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let mut templates = Vec::new();
    for i in 0..10 {
        templates.push(support::paid_template(&http, &base, &format!("Soak {i}")).await);
    }
    let partner = support::partner(&http, &base, "SOAK").await;
    let subs = Arc::new(Mutex::new(Vec::<String>::new()));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let inflight = Arc::new(AtomicUsize::new(0));
    let (rss0, _) = memory_kib(pid);

    let started = Instant::now();
    let total = (seconds * rate) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut memory = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_window = 0;
    for n in 0..total {
        let due = started + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let window = (due - started).as_secs() as usize / window_secs as usize;
        if window != last_window {
            memory.push(memory_kib(pid));
            last_window = window;
        }
        let (http, base, partner) = (http.clone(), base.clone(), partner.clone());
        let template = templates[n % templates.len()].clone();
        let (subs, samples, inflight) = (subs.clone(), samples.clone(), inflight.clone());
        inflight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let op = Op::of(n);
            let outcome = send(&http, &base, &partner, &template, &subs, op, n).await;
            inflight.fetch_sub(1, Ordering::Relaxed);
            samples
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Sample {
                    window,
                    latency: due.elapsed(),
                    ok: outcome.is_ok(),
                    what: outcome.err().unwrap_or_default(),
                });
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    memory.push(memory_kib(pid));

    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    let windows = samples.iter().map(|s| s.window).max().unwrap_or(0) + 1;
    println!(
        "soak: {total} requests at {rate}/s for {seconds} s on {} ({:.1} s wall); \
         server RSS before traffic {} KiB",
        stores.backend(),
        elapsed.as_secs_f64(),
        rss0
    );
    println!("window  from_s  requests  failed  p50_ms  p99_ms  max_ms  rss_kib  peak_rss_kib");
    for w in 0..windows {
        let mut lat: Vec<Duration> = samples
            .iter()
            .filter(|s| s.window == w)
            .map(|s| s.latency)
            .collect();
        lat.sort();
        let failed = samples.iter().filter(|s| s.window == w && !s.ok).count();
        let (rss, hwm) = memory.get(w).copied().unwrap_or((0, 0));
        println!(
            "{w:>6}  {:>6}  {:>8}  {failed:>6}  {:>6.1}  {:>6.1}  {:>6.1}  {rss:>7}  {hwm:>12}",
            w as u64 * window_secs,
            lat.len(),
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
        );
    }
    let failures: Vec<&str> = samples
        .iter()
        .filter(|s| !s.ok)
        .map(|s| s.what.as_str())
        .collect();
    assert_eq!(samples.len(), total);
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        !subs.lock().unwrap_or_else(|p| p.into_inner()).is_empty(),
        "no subscription was created"
    );
    drop(server);
}
