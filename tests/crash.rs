//! Crash safety of the real binary: `basketry serve` killed with SIGKILL at
//! random points under concurrent partner traffic, restarted on the same
//! stores, and then checked against the event log itself — every
//! acknowledged command's events are there exactly once, every hash chain
//! verifies, and the read models equal a rebuild from position zero. A
//! second test kills a projector-only process while it catches up on a
//! backlog of thousands of events.
//!
//! SQLite under a temp directory by default; with
//! `BASKETRY_TEST_API_BACKEND=postgres` (and `BASKETRY_TEST_POSTGRES_URL`)
//! the event store and the read database are one throwaway PostgreSQL
//! database. The kill points come from a seeded generator whose seed is
//! printed; `BASKETRY_CRASH_SEED=N` replays one.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basketry_store::RecordedEvent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use support::{Partner, Server, Stores};

/// Concurrent client tasks.
const CLIENTS: usize = 16;
/// SIGKILLs of the whole program, each followed by a restart.
const KILLS: usize = 4;
/// Acknowledged commands each incarnation must have answered before it may
/// be killed, so that every kill lands in the middle of real traffic.
const ACKS_PER_ROUND: usize = 100;

fn seed() -> u64 {
    std::env::var("BASKETRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Subscribe,
    Pause,
    Resume,
    Cancel,
}

impl Op {
    /// The event the command must have appended to the subscription's
    /// stream.
    fn event_type(self) -> &'static str {
        match self {
            Op::Subscribe => "SubscribedToTemplate",
            Op::Pause => "SubscriptionPaused",
            Op::Resume => "SubscriptionResumed",
            Op::Cancel => "SubscriptionCancelled",
        }
    }
}

/// A request the server answered with a 2xx, and what it acknowledged.
#[derive(Clone, Debug)]
struct Ack {
    op: Op,
    key: String,
    subscription_id: String,
    method: Method,
    path: String,
    body: Option<Value>,
    status: u16,
    response: String,
    /// Which incarnation of the server answered (0 = the first).
    incarnation: usize,
}

#[derive(Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    attempts: AtomicUsize,
    /// Requests that got no 2xx, by what they got instead.
    unacknowledged: Mutex<BTreeMap<String, usize>>,
    incarnation: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn acks(&self) -> usize {
        self.acks.lock().expect("lock").len()
    }

    fn unacknowledged(&self, why: String) {
        *self
            .unacknowledged
            .lock()
            .expect("lock")
            .entry(why)
            .or_default() += 1;
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    partner: &Partner,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    key: &str,
) -> Result<(u16, bool, String), reqwest::Error> {
    let mut req = partner
        .auth(http.request(method.clone(), format!("{base}{path}")))
        .header("Idempotency-Key", key);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v.as_bytes() == b"true");
    Ok((status, replayed, r.text().await?))
}

/// One client: subscribes new customers and pauses, resumes and cancels
/// the subscriptions it holds, each request with a fresh Idempotency-Key.
/// A subscription whose last request went unanswered is dropped: its state
/// is no longer known.
async fn client(
    n: usize,
    seed: u64,
    base: String,
    template: String,
    partner: Partner,
    shared: Arc<Shared>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut held: Vec<(String, &'static str)> = Vec::new();
    let mut i = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        i += 1;
        let key = format!("crash-{seed}-{n}-{i}");
        let pick = (!held.is_empty() && rng.gen_bool(0.65)).then(|| rng.gen_range(0..held.len()));
        let op = match pick.map(|j| (held[j].1, rng.gen_range(0..10))) {
            None => Op::Subscribe,
            Some(("ACTIVE", 0..=6)) => Op::Pause,
            Some(("PAUSED", 0..=6)) => Op::Resume,
            Some(_) => Op::Cancel,
        };
        let sid = pick.map(|j| held[j].0.clone()).unwrap_or_default();
        let (method, path, body) = match op {
            Op::Subscribe => (
                Method::POST,
                "/partner/marketplace/subscribe".to_string(),
                Some(json!({"template_id": template,
                            "user_email": format!("c{n}-{i}-{seed}@example.com"),
                            "broker_client_id": format!("C{n}"),
                            "auto_link_broker": true, "lot_multiplier": 1})),
            ),
            Op::Pause => (
                Method::PUT,
                format!("/partner/subscriptions/{sid}/pause"),
                Some(json!({"reason": "crash test"})),
            ),
            Op::Resume => (
                Method::PUT,
                format!("/partner/subscriptions/{sid}/resume"),
                Some(json!({})),
            ),
            Op::Cancel => (
                Method::DELETE,
                format!("/partner/subscriptions/{sid}"),
                None,
            ),
        };
        let incarnation = shared.incarnation.load(Ordering::SeqCst);
        shared.attempts.fetch_add(1, Ordering::SeqCst);
        match send(&http, &base, &partner, &method, &path, body.as_ref(), &key).await {
            Ok((status, replayed, text)) if (200..300).contains(&status) => {
                assert!(!replayed, "a fresh key was answered as a replay: {text}");
                let v: Value = serde_json::from_str(&text).expect("a 2xx body is JSON");
                let acknowledged = v["subscription_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}: no subscription_id in {text}"))
                    .to_string();
                match op {
                    Op::Subscribe => {
                        assert_eq!(status, 201, "{text}");
                        held.push((acknowledged.clone(), "ACTIVE"));
                    }
                    Op::Pause | Op::Resume | Op::Cancel => {
                        assert_eq!(status, 200, "{text}");
                        assert_eq!(acknowledged, sid, "{text}");
                        let j = pick.expect("a held subscription");
                        let now = match op {
                            Op::Pause => "PAUSED",
                            Op::Resume => "ACTIVE",
                            _ => "CANCELLED",
                        };
                        assert_eq!(v["status"], now, "{method} {path}: {text}");
                        if now == "CANCELLED" {
                            held.swap_remove(j);
                        } else {
                            held[j].1 = now;
                        }
                    }
                }
                shared.acks.lock().expect("lock").push(Ack {
                    op,
                    key,
                    subscription_id: acknowledged,
                    method,
                    path,
                    body,
                    status,
                    response: text,
                    incarnation,
                });
            }
            Ok((status, _, text)) => {
                // Only an outage may refuse a command this client believes
                // valid: anything else is a bug in the server or here.
                assert!(
                    status == 503 || status == 429,
                    "{method} {path} answered {status}: {text}"
                );
                shared.unacknowledged(format!("HTTP {status}"));
                if let Some(j) = pick {
                    held.swap_remove(j);
                }
            }
            Err(e) => {
                shared.unacknowledged(if e.is_connect() {
                    "connection refused".into()
                } else {
                    "connection lost mid-request".into()
                });
                if let Some(j) = pick {
                    held.swap_remove(j);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Waits until `shared` holds at least `n` acknowledgements (60 s at most).
/// A client that stopped early (it panicked) is reported at once.
async fn wait_for_acks(
    shared: &Shared,
    n: usize,
    server: &Server,
    clients: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.acks() < n {
        if let Some(i) = clients.iter().position(|c| c.is_finished()) {
            if let Err(e) = clients.remove(i).await {
                std::panic::resume_unwind(e.into_panic());
            }
            panic!("client {i} stopped before it was told to");
        }
        assert!(
            Instant::now() < deadline,
            "traffic stalled at {} acknowledged commands:\n{}",
            shared.acks(),
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A subscription's status after each of its events, checking every
/// transition is one the subscription lifecycle allows, so none was applied twice (docs/reference/domain.md#subscription-lifecycle).
fn replay_statuses(events: &[RecordedEvent]) -> HashMap<String, &'static str> {
    let mut status: HashMap<String, &'static str> = HashMap::new();
    for e in events {
        let Some(sid) = e.stream_id.as_str().strip_prefix("subscription-") else {
            continue;
        };
        let now = status.get(sid).copied();
        let next = match (e.event_type.as_str(), now) {
            ("SubscribedToTemplate", None) => "ACTIVE",
            ("SubscriptionPaused", Some("ACTIVE")) => "PAUSED",
            ("SubscriptionResumed", Some("PAUSED")) => "ACTIVE",
            ("SubscriptionCancelled", Some("ACTIVE" | "PAUSED")) => "CANCELLED",
            (
                "SubscribedToTemplate"
                | "SubscriptionPaused"
                | "SubscriptionResumed"
                | "SubscriptionCancelled",
                _,
            ) => panic!(
                "{} at {}: {} from {now:?} is not a transition the subscription lifecycle allows",
                e.stream_id, e.position, e.event_type
            ),
            _ => continue,
        };
        status.insert(sid.to_string(), next);
    }
    status
}

/// What the log must show: event ids unique; one execution per
/// Idempotency-Key; every acknowledged command's event exactly once on its
/// subscription's stream; only allowed transitions. Returns the final
/// status of every subscription.
fn check_log(events: &[RecordedEvent], acks: &[Ack]) -> HashMap<String, &'static str> {
    let mut ids = HashSet::new();
    for e in events {
        assert!(
            ids.insert(e.event_id),
            "event {} is stored twice",
            e.event_id
        );
    }
    let mut by_key: HashMap<&str, Vec<&RecordedEvent>> = HashMap::new();
    for e in events {
        if let Some(k) = e.metadata.idempotency_key.as_deref() {
            by_key.entry(k).or_default().push(e);
        }
    }
    for (key, list) in &by_key {
        let correlations: HashSet<_> = list.iter().map(|e| e.metadata.correlation_id).collect();
        assert_eq!(
            correlations.len(),
            1,
            "the request with Idempotency-Key {key} ran more than once: {:?}",
            list.iter()
                .map(|e| (&e.event_type, e.stream_id.as_str()))
                .collect::<Vec<_>>()
        );
    }
    for ack in acks {
        let list = by_key.get(ack.key.as_str()).unwrap_or_else(|| {
            panic!(
                "acknowledged {:?} of {} (key {}) left no event",
                ack.op, ack.subscription_id, ack.key
            )
        });
        let stream = format!("subscription-{}", ack.subscription_id);
        let matching = list
            .iter()
            .filter(|e| e.event_type == ack.op.event_type() && e.stream_id.as_str() == stream)
            .count();
        assert_eq!(
            matching,
            1,
            "acknowledged {:?} of {} (key {}): {} {} events on {stream}",
            ack.op,
            ack.subscription_id,
            ack.key,
            matching,
            ack.op.event_type()
        );
        if ack.op == Op::Subscribe {
            let charged = list
                .iter()
                .filter(|e| e.event_type == "SubscriptionCharged")
                .count();
            assert_eq!(charged, 1, "the first month is charged exactly once");
        }
    }
    replay_statuses(events)
}

/// Read models against the log: one row per subscription with the log's
/// final status, one ledger line per charge, and the template's
/// subscriber_count equal to its subscriptions not cancelled.
async fn check_read_models(
    pool: &sqlx::AnyPool,
    events: &[RecordedEvent],
    statuses: &HashMap<String, &'static str>,
    template: &str,
) {
    use sqlx::Row;
    let rows = sqlx::query("SELECT subscription_id, status FROM rm_subscriptions")
        .fetch_all(pool)
        .await
        .expect("rm_subscriptions");
    let projected: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    let expected: HashMap<String, String> = statuses
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    assert_eq!(projected, expected, "rm_subscriptions differs from the log");
    let live = statuses.values().filter(|s| **s != "CANCELLED").count() as i64;
    let count: i64 = sqlx::query("SELECT subscriber_count FROM rm_baskets WHERE basket_id = $1")
        .bind(template)
        .fetch_one(pool)
        .await
        .expect("rm_baskets")
        .get(0);
    assert_eq!(count, live, "subscriber_count against the log");
    let charges = events
        .iter()
        .filter(|e| e.event_type == "SubscriptionCharged")
        .count() as i64;
    let lines: i64 = sqlx::query("SELECT COUNT(*) FROM rm_ledger")
        .fetch_one(pool)
        .await
        .expect("rm_ledger")
        .get(0);
    assert_eq!(lines, charges, "one ledger line per charge");
}

/// Every projector at the head, having seen every event exactly once.
async fn check_checkpoints(pool: &sqlx::AnyPool, events: &[RecordedEvent]) {
    let head = events.last().expect("a log").position.commit;
    let cps = support::wait_caught_up(pool, head).await;
    for (name, (_, applied)) in &cps {
        assert_eq!(
            *applied,
            events.len() as u64,
            "{name} counted {applied} events applied; the log holds {}",
            events.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_sigkill_exactly_once_and_read_models_equal_a_rebuild() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let stores = Stores::new().await;
    println!(
        "crash test: seed {seed} (BASKETRY_CRASH_SEED={seed} replays it), backend {}",
        stores.backend()
    );
    let port = support::free_port();
    let mut server = Server::start(&stores, port, &[]).await;
    let base = server.base();
    let http = reqwest::Client::new();
    let template = support::paid_template(&http, &base, "Crash-safe income").await;
    let partner = support::partner(&http, &base, "ZEBU").await;

    let shared = Arc::new(Shared::default());
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(client(
                n,
                seed,
                base.clone(),
                template.clone(),
                partner.clone(),
                shared.clone(),
            ))
        })
        .collect();

    let mut replays = 0usize;
    for round in 1..=KILLS {
        let floor = shared.acks() + ACKS_PER_ROUND;
        wait_for_acks(&shared, floor, &server, &mut clients).await;
        let delay = rng.gen_range(0..1_000u64);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let (acks, attempts) = (shared.acks(), shared.attempts.load(Ordering::SeqCst));
        server.kill();
        println!(
            "kill {round}/{KILLS}: SIGKILL {delay} ms after the {floor}th acknowledgement \
             ({acks} acknowledged of {attempts} sent so far)"
        );
        let down = rng.gen_range(0..300u64);
        tokio::time::sleep(Duration::from_millis(down)).await;
        shared.incarnation.store(round, Ordering::SeqCst);
        server.restart(&stores).await;

        // What the killed incarnation acknowledged is replayed, not re-run,
        // when a client retries it with the same key.
        let sample: Vec<Ack> = {
            let acks = shared.acks.lock().expect("lock");
            let mine: Vec<&Ack> = acks.iter().filter(|a| a.incarnation == round - 1).collect();
            (0..4)
                .filter(|_| !mine.is_empty())
                .map(|_| mine[rng.gen_range(0..mine.len())].clone())
                .collect()
        };
        for ack in sample {
            let (status, replayed, text) = send(
                &http,
                &base,
                &partner,
                &ack.method,
                &ack.path,
                ack.body.as_ref(),
                &ack.key,
            )
            .await
            .expect("replay");
            assert_eq!(
                (status, replayed),
                (ack.status, true),
                "retry of {:?} {} after the crash: {text}",
                ack.op,
                ack.key
            );
            assert_eq!(text, ack.response, "a replay is byte for byte the answer");
            replays += 1;
        }
    }
    let floor = shared.acks() + ACKS_PER_ROUND;
    wait_for_acks(&shared, floor, &server, &mut clients).await;
    shared.stop.store(true, Ordering::SeqCst);
    for c in clients {
        if let Err(e) = c.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let traffic = started.elapsed();

    let acks = shared.acks.lock().expect("lock").clone();
    let events = support::read_log(&stores).await;
    let statuses = check_log(&events, &acks);
    let streams = support::verify_chains(&events);
    let pool = support::read_db(&stores).await;
    check_checkpoints(&pool, &events).await;
    check_read_models(&pool, &events, &statuses, &template).await;
    pool.close().await;
    server.terminate();
    let verify = stores.run(&["store", "verify"]);
    assert!(verify.contains("; 0 broken chains"), "{verify}");
    let rows = support::assert_rebuild_reproduces(&stores).await;

    let lost = shared
        .unacknowledged
        .lock()
        .expect("lock")
        .get("connection lost mid-request")
        .copied()
        .unwrap_or(0);
    assert!(lost > 0, "no kill caught a request in flight");
    let mut by_op: BTreeMap<Op, usize> = BTreeMap::new();
    for a in &acks {
        *by_op.entry(a.op).or_default() += 1;
    }
    println!(
        "crash test ({}): {} kills, {} commands sent by {CLIENTS} clients, {} acknowledged {by_op:?}, \
         unacknowledged {:?}; {replays} retries after restarts replayed; {} events in {streams} \
         streams checked; {} subscriptions; {rows} read-model rows equal a rebuild; \
         traffic {:.1} s, total {:.1} s",
        stores.backend(),
        KILLS,
        shared.attempts.load(Ordering::SeqCst),
        acks.len(),
        shared.unacknowledged.lock().expect("lock"),
        events.len(),
        statuses.len(),
        traffic.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Subscribes `n` customers through `base` with 16 concurrent tasks, then
/// pauses every 5th and cancels every 7th: a backlog for the projectors.
async fn backlog(base: &str, template: &str, partner: &Partner, n: usize) -> usize {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, next, base, template, partner) = (
                http.clone(),
                next.clone(),
                base.to_string(),
                template.to_string(),
                partner.clone(),
            );
            tokio::spawn(async move {
                let mut commands = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return commands;
                    }
                    let call = |method: Method, path: String, body: Option<Value>| {
                        let mut req = partner.auth(http.request(method, format!("{base}{path}")));
                        if let Some(b) = body {
                            req = req.json(&b);
                        }
                        async move {
                            let r = req.send().await.expect("send");
                            let status = r.status();
                            let text = r.text().await.expect("body");
                            assert!(status.is_success(), "{path}: {status} {text}");
                            serde_json::from_str::<Value>(&text).expect("json")
                        }
                    };
                    let s = call(
                        Method::POST,
                        "/partner/marketplace/subscribe".into(),
                        Some(json!({"template_id": template,
                                    "user_email": format!("backlog{i}@example.com"),
                                    "broker_client_id": "C1", "auto_link_broker": true,
                                    "lot_multiplier": 1})),
                    )
                    .await;
                    let sid = s["subscription_id"].as_str().expect("id").to_string();
                    commands += 1;
                    if i % 5 == 0 {
                        call(
                            Method::PUT,
                            format!("/partner/subscriptions/{sid}/pause"),
                            Some(json!({})),
                        )
                        .await;
                        commands += 1;
                    }
                    if i % 7 == 0 {
                        call(
                            Method::DELETE,
                            format!("/partner/subscriptions/{sid}"),
                            None,
                        )
                        .await;
                        commands += 1;
                    }
                }
            })
        })
        .collect();
    let mut commands = 0;
    for t in tasks {
        commands += t.await.expect("backlog task");
    }
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_while_catching_up_resumes_without_applying_an_event_twice() {
    const SUBSCRIPTIONS: usize = 1_200;
    const PROJECTOR_KILLS: usize = 2;
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let stores = Stores::new().await;
    println!(
        "projector crash test: seed {seed} (BASKETRY_CRASH_SEED={seed} replays it), backend {}",
        stores.backend()
    );
    let mut command = Server::start(&stores, support::free_port(), &["command"]).await;
    let base = command.base();
    let http = reqwest::Client::new();
    let template = support::paid_template(&http, &base, "Backlogged").await;
    let partner = support::partner(&http, &base, "ZEBU").await;
    let commands = backlog(&base, &template, &partner, SUBSCRIPTIONS).await;
    let events = support::read_log(&stores).await;
    let head = events.last().expect("a log").position.commit;
    assert!(events.len() > 3_000, "a backlog of {} events", events.len());
    println!(
        "backlog: {commands} commands, {} events, in {:.1} s",
        events.len(),
        started.elapsed().as_secs_f64()
    );

    let pool = support::read_db(&stores).await;
    let mut projector = Server::start(&stores, support::free_port(), &["projector"]).await;
    let mut last = 0u64;
    for round in 1..=PROJECTOR_KILLS {
        // Kill once some projector has passed a random point of the
        // backlog beyond the last kill's, while others are still behind.
        let target = last + rng.gen_range(1..=(head - last) / 3);
        let deadline = Instant::now() + Duration::from_secs(60);
        let at = loop {
            let cps = support::checkpoints(&pool).await;
            if cps.values().any(|(p, _)| *p >= target) {
                break cps;
            }
            assert!(
                Instant::now() < deadline,
                "the projector made no progress past {last}: {cps:?}\n{}",
                projector.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        projector.kill();
        let after = support::checkpoints(&pool).await;
        let behind = after.values().filter(|(p, _)| *p < head).count();
        println!(
            "projector kill {round}/{PROJECTOR_KILLS}: SIGKILL past position {target} of {head}; \
             checkpoints {:?}",
            after.iter().map(|(k, (p, _))| (k, p)).collect::<Vec<_>>()
        );
        assert!(
            behind > 0,
            "the kill came after the catch-up: {at:?} (raise SUBSCRIPTIONS)"
        );
        last = after
            .values()
            .map(|(p, _)| *p)
            .min()
            .unwrap_or(0)
            .max(target);
        projector.restart(&stores).await;
    }
    check_checkpoints(&pool, &events).await;
    let statuses = replay_statuses(&events);
    assert_eq!(statuses.len(), SUBSCRIPTIONS);
    check_read_models(&pool, &events, &statuses, &template).await;
    pool.close().await;
    projector.terminate();
    command.terminate();
    let rows = support::assert_rebuild_reproduces(&stores).await;
    println!(
        "projector crash test ({}): {} events, {PROJECTOR_KILLS} kills mid catch-up, \
         {rows} read-model rows equal a rebuild, total {:.1} s",
        stores.backend(),
        events.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The instance dies between the append and the completion of a command
/// with an `Idempotency-Key` (`BASKETRY_FAULT=exit_after_append` ends it
/// exactly there), is restarted, and the client retries with the same key:
/// within the in-flight timeout the key is still taken; after it the retry
/// takes the key over, finds the committed events in the log and answers
/// `409 idempotency_key_committed` naming them, instead of subscribing
/// again. One subscription, one first-month charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_append_and_completion_does_not_run_the_command_again() {
    const IN_FLIGHT_TIMEOUT_SECS: u64 = 3;
    let stores = Stores::new().await;
    let mut server = Server::start(&stores, support::free_port(), &[]).await;
    let base = server.base();
    let http = reqwest::Client::new();
    let template = support::paid_template(&http, &base, "Killed mid-request").await;
    let partner = support::partner(&http, &base, "ZEBU").await;
    let timeout = IN_FLIGHT_TIMEOUT_SECS.to_string();
    server.set_env("BASKETRY_IDEMPOTENCY_IN_FLIGHT_TIMEOUT", Some(&timeout));
    server.set_env("BASKETRY_FAULT", Some("exit_after_append"));
    server.terminate();
    server.restart(&stores).await;

    let body = json!({"template_id": template, "user_email": "killed@example.com",
                      "broker_client_id": "C1", "auto_link_broker": true, "lot_multiplier": 1});
    let path = "/partner/marketplace/subscribe";
    let key = "order-killed-1";
    let sent = send(
        &http,
        &base,
        &partner,
        &Method::POST,
        path,
        Some(&body),
        key,
    )
    .await;
    assert!(
        sent.is_err(),
        "the fault hook answered instead of exiting: {sent:?}"
    );
    let status = server.wait_exit();
    assert!(
        !status.success(),
        "the process was ended by the hook: {status}"
    );
    let count =
        |events: &[RecordedEvent], t: &str| events.iter().filter(|e| e.event_type == t).count();
    let events = support::read_log(&stores).await;
    assert_eq!(
        count(&events, "SubscribedToTemplate"),
        1,
        "the command committed before the kill"
    );
    let subscribed = events
        .iter()
        .find(|e| e.event_type == "SubscribedToTemplate")
        .expect("the subscription")
        .clone();

    server.set_env("BASKETRY_FAULT", None);
    server.restart(&stores).await;
    let restarted = Instant::now();
    // Until the in-flight timeout has passed the key is still taken; after
    // it the retry takes the key over.
    let deadline = Instant::now() + Duration::from_secs(IN_FLIGHT_TIMEOUT_SECS + 30);
    let (status, replayed, text) = loop {
        let (status, replayed, text) = send(
            &http,
            &base,
            &partner,
            &Method::POST,
            path,
            Some(&body),
            key,
        )
        .await
        .expect("the restarted server answers");
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !(status == 409 && v["code"] == "idempotency_request_in_progress") {
            break (status, replayed, text);
        }
        assert!(
            Instant::now() < deadline,
            "the key was never taken over: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "retry taken over {:.1} s after the restart (in-flight timeout {IN_FLIGHT_TIMEOUT_SECS} s): {status} {text}",
        restarted.elapsed().as_secs_f64()
    );
    let v: Value = serde_json::from_str(&text).expect("problem+json");
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("idempotency_key_committed")),
        "the retry after the takeover: {text}"
    );
    assert!(!replayed);
    let p = events
        .iter()
        .filter(|e| e.metadata.idempotency_key.as_deref() == Some(key))
        .map(|e| e.position)
        .max()
        .expect("the request's events");
    assert_eq!(
        v["consistency_token"],
        format!("{}.{}", p.commit, p.prepare),
        "{text}"
    );
    assert!(
        v["streams"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == subscribed.stream_id.as_str())),
        "the answer names the subscription's stream: {text}"
    );
    let again = send(
        &http,
        &base,
        &partner,
        &Method::POST,
        path,
        Some(&body),
        key,
    )
    .await
    .expect("replay");
    assert_eq!(
        (again.0, again.1, again.2.as_str()),
        (409, true, text.as_str())
    );

    let events = support::read_log(&stores).await;
    assert_eq!(
        count(&events, "SubscribedToTemplate"),
        1,
        "one subscription"
    );
    assert_eq!(
        count(&events, "SubscriptionCharged"),
        1,
        "one first-month charge"
    );
    let runs: HashSet<_> = events
        .iter()
        .filter(|e| e.metadata.idempotency_key.as_deref() == Some(key))
        .map(|e| e.metadata.correlation_id)
        .collect();
    assert_eq!(runs.len(), 1, "the request ran once");
    server.terminate();
}
