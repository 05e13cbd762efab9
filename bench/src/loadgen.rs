//! The load generator: `basketry-bench load …`, run as a separate process
//! so that it does not share the server's runtime (it still shares the
//! machine's cores).
//!
//! Two modes: as fast as possible with `connections` requests in flight
//! (closed loop), or at a fixed `rate` (open loop: request `i` is due at
//! `start + i / rate`, and its latency is measured from that due time, so
//! a stalled server cannot hide its queueing delay). Prints one JSON line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The `load` subcommand's arguments.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct LoadArgs {
    /// Full URL (`http://127.0.0.1:PORT/path`).
    #[arg(long)]
    pub url: String,
    /// `GET` or `POST`.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// A header `name: value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// A JSON body; `{n}` is replaced by the request's number.
    #[arg(long)]
    pub body: Option<String>,
    /// First request number.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Requests per second; 0 for as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub first_error: Option<String>,
}

/// Runs the load and prints the result as JSON.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let result = generate(args).await?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

async fn generate(args: LoadArgs) -> anyhow::Result<LoadResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(30))
        .build()?;
    let method = reqwest::Method::from_bytes(args.method.as_bytes())?;
    let mut headers = reqwest::header::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h.split_once(':').context("a header is `name: value`")?;
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            reqwest::header::HeaderValue::from_str(value.trim())?,
        );
    }
    if args.body.is_some() {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
    }
    let counter = Arc::new(AtomicU64::new(args.start));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (client, method, headers, body) = (
            client.clone(),
            method.clone(),
            headers.clone(),
            args.body.clone(),
        );
        let (counter, errors, first_error, url) = (
            Arc::clone(&counter),
            Arc::clone(&errors),
            Arc::clone(&first_error),
            args.url.clone(),
        );
        let (rate, first) = (args.rate, args.start);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let due = if rate > 0.0 {
                    start + Duration::from_secs_f64((n - first) as f64 / rate)
                } else {
                    Instant::now()
                };
                if due >= deadline || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let mut req = client
                    .request(method.clone(), &url)
                    .headers(headers.clone());
                if let Some(b) = &body {
                    req = req.body(b.replace("{n}", &n.to_string()));
                }
                let ok = match req.send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let text = resp.bytes().await;
                        if status.is_success() && text.is_ok() {
                            true
                        } else {
                            let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                            if slot.is_none() {
                                *slot = Some(format!(
                                    "{status}: {}",
                                    text.map(|t| String::from_utf8_lossy(&t)
                                        .chars()
                                        .take(300)
                                        .collect::<String>())
                                        .unwrap_or_default()
                                ));
                            }
                            false
                        }
                    }
                    Err(e) => {
                        let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        if slot.is_none() {
                            *slot = Some(e.to_string());
                        }
                        false
                    }
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(due.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            0
        } else {
            all[((all.len() as f64 * p) as usize).min(all.len() - 1)]
        }
    };
    let first_error = first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(LoadResult {
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        rps: all.len() as f64 / seconds,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: all.last().copied().unwrap_or(0),
        first_error,
    })
}

/// Runs `basketry-bench load` as a child process and reads its result.
pub async fn spawn(args: &LoadArgs) -> anyhow::Result<LoadResult> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("load")
        .arg("--url")
        .arg(&args.url)
        .arg("--method")
        .arg(&args.method)
        .arg("--start")
        .arg(args.start.to_string())
        .arg("--connections")
        .arg(args.connections.to_string())
        .arg("--seconds")
        .arg(args.seconds.to_string())
        .arg("--rate")
        .arg(args.rate.to_string());
    for h in &args.headers {
        cmd.arg("--header").arg(h);
    }
    if let Some(b) = &args.body {
        cmd.arg("--body").arg(b);
    }
    let out = cmd.output().await.context("running the load generator")?;
    if !out.status.success() {
        anyhow::bail!(
            "the load generator failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .context("the load generator printed nothing")?;
    let result: LoadResult = serde_json::from_str(line).context("reading the load result")?;
    if let Some(e) = &result.first_error {
        eprintln!(
            "  load {} {}: {} errors, first: {e}",
            args.method, args.url, result.errors
        );
    }
    Ok(result)
}
