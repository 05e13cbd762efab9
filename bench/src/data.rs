//! Deterministic benchmark data and the bulk loader.
//!
//! Going through HTTP for millions of events is too slow, so the data is
//! made the way the command path makes it, once, and then copied:
//!
//! 1. [`Scenario::record`] runs a tiny marketplace through the real program
//!    over HTTP: three templates (a PAID one entering at 09:15, the *hot*
//!    one; a PAID one at 10:30; a FREE one at 11:00), a partner key, and
//!    four partner subscriptions (hot, cold, cold then paused, free). It
//!    reads the resulting events back from the store.
//! 2. Every event is turned into a text with holes where the ids of its
//!    template (basket id, strategy id, name) or of its subscription
//!    (subscription id, allocation id, user id, e-mail) were.
//! 3. [`load`] fills the holes with fresh ids drawn from a seeded generator
//!    (user ids are derived from the e-mail as the command path derives
//!    them) and appends each copy with `EventStore::append`, one append per
//!    stream (`basket-{id}`, `user-{id}`, `subscription-{id}`, so revisions
//!    start at 0), many appends in flight so that the store's group commit
//!    writes large multi-event transactions. Streams the copies share (the
//!    partner, its key) are appended once, first.
//!
//! The result is accepted by the projectors (see [`check_counts`]) and by
//! `basketry audit verify`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use basketry_domain::ids::UserId;
use basketry_domain::values::Email;
use basketry_store::{
    EventStore, ExpectedRevision, NewEvent, NewMetadata, RecordedEvent, StreamId,
};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::server::{self, Server};

/// Seed of every generated data set.
pub const SEED: u64 = 20_261_121;

/// Appends in flight while loading.
const IN_FLIGHT: usize = 1024;

/// Template kinds of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// PAID, entering at 09:15 on weekdays.
    Hot,
    /// PAID, entering at 10:30.
    Cold,
    /// FREE, entering at 11:00.
    Free,
}

/// Subscription kinds of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubKind {
    HotActive,
    ColdActive,
    ColdPaused,
    FreeActive,
}

impl SubKind {
    fn template(self) -> Kind {
        match self {
            SubKind::HotActive => Kind::Hot,
            SubKind::ColdActive | SubKind::ColdPaused => Kind::Cold,
            SubKind::FreeActive => Kind::Free,
        }
    }
}

/// A piece of an event's text: literal, or a hole to fill.
#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Hole(usize),
}

/// A text with holes.
#[derive(Debug, Clone)]
struct Shape(Vec<Piece>);

impl Shape {
    /// Cuts `text` at every occurrence of the tokens (`tokens[i]` becomes
    /// hole `i`).
    fn of(text: &str, tokens: &[String]) -> Self {
        let mut hits: Vec<(usize, usize, usize)> = Vec::new();
        for (hole, token) in tokens.iter().enumerate() {
            if token.is_empty() {
                continue;
            }
            for (at, _) in text.match_indices(token.as_str()) {
                hits.push((at, token.len(), hole));
            }
        }
        hits.sort();
        let mut pieces = Vec::new();
        let mut pos = 0;
        for (at, len, hole) in hits {
            if at < pos {
                continue;
            }
            if at > pos {
                pieces.push(Piece::Lit(text[pos..at].to_string()));
            }
            pieces.push(Piece::Hole(hole));
            pos = at + len;
        }
        if pos < text.len() {
            pieces.push(Piece::Lit(text[pos..].to_string()));
        }
        Shape(pieces)
    }

    fn fill(&self, values: &[String]) -> String {
        let mut out = String::with_capacity(1024);
        for p in &self.0 {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Hole(i) => out.push_str(&values[*i]),
            }
        }
        out
    }
}

/// One event of a stream to copy.
#[derive(Debug, Clone)]
struct EventShape {
    event_type: String,
    schema_version: u32,
    data: Shape,
    metadata: Shape,
    /// Index (in the unit) of the event that caused this one, if any.
    caused_by: Option<usize>,
}

/// The streams of one template or one subscription, with holes.
#[derive(Debug, Clone)]
struct Unit {
    /// (stream name, events), in append order.
    streams: Vec<(Shape, Vec<EventShape>)>,
    events: usize,
}

/// Holes: first the template's tokens, then the subscription's.
struct Tokens {
    template: Vec<String>,
    subscription: Vec<String>,
}

impl Tokens {
    fn all(&self) -> Vec<String> {
        self.template
            .iter()
            .chain(&self.subscription)
            .cloned()
            .collect()
    }
}

/// What the scenario recorded, ready to copy.
pub struct Scenario {
    shared: Vec<(StreamId, Vec<RecordedEvent>)>,
    templates: HashMap<Kind, Unit>,
    subscriptions: HashMap<SubKind, Unit>,
    /// Holes of a template unit: token count.
    template_holes: usize,
    /// Holes of each subscription unit (after the template's).
    subscription_holes: HashMap<SubKind, usize>,
}

const NAME_MARK: &str = "Benchmark template";

fn uuids_in(text: &str, into: &mut BTreeSet<String>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 36 <= bytes.len() {
        let candidate = &text[i..i + 36];
        if candidate.as_bytes()[8] == b'-' && Uuid::parse_str(candidate).is_ok() {
            into.insert(candidate.to_string());
            i += 36;
        } else {
            i += 1;
        }
    }
}

impl Scenario {
    /// Runs the scenario through a server on a scratch directory and reads
    /// its events back.
    pub async fn record(scratch: &Path) -> anyhow::Result<Self> {
        let server = Server::start(scratch).await?;
        let admin = server::token("admin@bench.basketry.dev", &["Admins"])?;
        let hot = server::publish_template(
            &server,
            &admin,
            &format!("{NAME_MARK} hot"),
            "09:15",
            "15:10",
            99_900,
        )
        .await?;
        let cold = server::publish_template(
            &server,
            &admin,
            &format!("{NAME_MARK} cold"),
            "10:30",
            "15:10",
            49_900,
        )
        .await?;
        let free = server::publish_template(
            &server,
            &admin,
            &format!("{NAME_MARK} free"),
            "11:00",
            "15:10",
            0,
        )
        .await?;
        let key = server::partner_key(&server, &admin).await?;
        let mut subs = Vec::new();
        for (kind, template, email) in [
            (SubKind::HotActive, &hot, "scenario-hot@bench.basketry.dev"),
            (
                SubKind::ColdActive,
                &cold,
                "scenario-cold@bench.basketry.dev",
            ),
            (
                SubKind::ColdPaused,
                &cold,
                "scenario-paused@bench.basketry.dev",
            ),
            (
                SubKind::FreeActive,
                &free,
                "scenario-free@bench.basketry.dev",
            ),
        ] {
            let id = server::partner_subscribe(&server, &key, template, email).await?;
            subs.push((kind, id, email));
        }
        let paused = &subs[2].1;
        server
            .send(
                reqwest::Method::PUT,
                &format!("/partner/subscriptions/{paused}/pause"),
                &server::partner_headers(&key.0, &key.1),
                serde_json::json!({}),
            )
            .await?;
        let events = server.store.read_all(None, 100_000).await?;
        server.stop().await?;

        // Group by stream, in order of first appearance.
        let mut order: Vec<StreamId> = Vec::new();
        let mut by_stream: HashMap<StreamId, Vec<RecordedEvent>> = HashMap::new();
        for e in &events {
            if !by_stream.contains_key(&e.stream_id) {
                order.push(e.stream_id.clone());
            }
            by_stream
                .entry(e.stream_id.clone())
                .or_default()
                .push(e.clone());
        }
        let template_ids = [(Kind::Hot, &hot), (Kind::Cold, &cold), (Kind::Free, &free)];
        let mut unit_streams: BTreeSet<String> = BTreeSet::new();
        for (_, id) in template_ids {
            unit_streams.insert(format!("basket-{id}"));
        }
        let mut sub_streams = HashMap::new();
        for (kind, id, email) in &subs {
            let user =
                UserId::from_email(&Email::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?);
            let streams = vec![format!("user-{user}"), format!("subscription-{id}")];
            unit_streams.extend(streams.iter().cloned());
            sub_streams.insert(*kind, (streams, user.to_string(), email.to_string()));
        }
        let shared: Vec<(StreamId, Vec<RecordedEvent>)> = order
            .iter()
            .filter(|s| !unit_streams.contains(s.as_str()))
            .map(|s| (s.clone(), by_stream[s].clone()))
            .collect();
        let mut shared_uuids = BTreeSet::new();
        for (_, evs) in &shared {
            for e in evs {
                uuids_in(&serde_json::to_string(&e.data)?, &mut shared_uuids);
            }
        }
        // The admin owns the templates: never replaced.
        let admin_id = UserId::from_email(
            &Email::parse("admin@bench.basketry.dev").map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        shared_uuids.insert(admin_id.to_string());

        // Template tokens: the uuids of the basket stream, then the name.
        let mut template_tokens: HashMap<Kind, Vec<String>> = HashMap::new();
        for (kind, id) in template_ids {
            let mut found = BTreeSet::new();
            for e in &by_stream[&StreamId::parse(format!("basket-{id}"))?] {
                uuids_in(&serde_json::to_string(&e.data)?, &mut found);
            }
            let mut tokens: Vec<String> = vec![id.clone()];
            tokens.extend(
                found
                    .into_iter()
                    .filter(|u| u != id && !shared_uuids.contains(u)),
            );
            template_tokens.insert(kind, tokens);
        }
        let width = template_tokens.values().map(Vec::len).max().unwrap_or(1);
        // Same number of template holes for every kind (the name last).
        let template_holes = width + 1;
        let template_tokens: HashMap<Kind, Vec<String>> = template_tokens
            .into_iter()
            .map(|(kind, mut t)| {
                t.resize(width, String::new());
                let name = match kind {
                    Kind::Hot => "hot",
                    Kind::Cold => "cold",
                    Kind::Free => "free",
                };
                t.push(format!("{NAME_MARK} {name}"));
                (kind, t)
            })
            .collect();

        let mut templates = HashMap::new();
        for (kind, id) in template_ids {
            let tokens = Tokens {
                template: template_tokens[&kind].clone(),
                subscription: Vec::new(),
            };
            let stream = StreamId::parse(format!("basket-{id}"))?;
            templates.insert(
                kind,
                unit(&[(stream.clone(), by_stream[&stream].clone())], &tokens)?,
            );
        }
        let mut subscriptions = HashMap::new();
        let mut subscription_holes = HashMap::new();
        for (kind, (streams, user, email)) in &sub_streams {
            let template = &template_tokens[&kind.template()];
            let mut found = BTreeSet::new();
            let mut recorded = Vec::new();
            for s in streams {
                let s = StreamId::parse(s.clone())?;
                let evs = by_stream
                    .get(&s)
                    .cloned()
                    .context("a subscription stream is missing")?;
                for e in &evs {
                    uuids_in(&serde_json::to_string(&e.data)?, &mut found);
                }
                recorded.push((s, evs));
            }
            // Holes: e-mail, user id, then the subscription's own uuids.
            let mut tokens = vec![email.clone(), user.clone()];
            tokens.extend(
                found
                    .into_iter()
                    .filter(|u| u != user && !shared_uuids.contains(u) && !template.contains(u)),
            );
            subscription_holes.insert(*kind, tokens.len());
            let tokens = Tokens {
                template: template.clone(),
                subscription: tokens,
            };
            subscriptions.insert(*kind, unit(&recorded, &tokens)?);
        }
        Ok(Self {
            shared,
            templates,
            subscriptions,
            template_holes,
            subscription_holes,
        })
    }

    /// Events of one template copy.
    pub fn template_events(&self, kind: Kind) -> usize {
        self.templates[&kind].events
    }

    /// Events of one subscription copy.
    pub fn subscription_events(&self, kind: SubKind) -> usize {
        self.subscriptions[&kind].events
    }

    /// Events of the shared streams.
    pub fn shared_events(&self) -> usize {
        self.shared.iter().map(|(_, e)| e.len()).sum()
    }
}

fn unit(streams: &[(StreamId, Vec<RecordedEvent>)], tokens: &Tokens) -> anyhow::Result<Unit> {
    let all = tokens.all();
    let mut index_of = HashMap::new();
    let mut n = 0;
    for (_, evs) in streams {
        for e in evs {
            index_of.insert(e.event_id, n);
            n += 1;
        }
    }
    let mut out = Vec::new();
    for (stream, evs) in streams {
        let mut shapes = Vec::new();
        for e in evs {
            let metadata = NewMetadata {
                actor: e.metadata.actor.clone(),
                correlation_id: Uuid::nil(),
                causation_id: None,
                idempotency_key: e.metadata.idempotency_key.clone(),
            };
            shapes.push(EventShape {
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                data: Shape::of(&serde_json::to_string(&e.data)?, &all),
                metadata: Shape::of(&serde_json::to_string(&metadata)?, &all),
                caused_by: e
                    .metadata
                    .causation_id
                    .and_then(|c| index_of.get(&c).copied()),
            });
        }
        out.push((Shape::of(stream.as_str(), &all), shapes));
    }
    Ok(Unit {
        streams: out,
        events: n,
    })
}

/// Fresh UUIDv7s from a seeded generator.
pub struct Ids {
    rng: StdRng,
    millis: u64,
}

impl Ids {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            // 2026-11-21T00:00:00Z.
            millis: 1_795_219_200_000,
        }
    }

    pub fn next(&mut self) -> Uuid {
        self.millis += 1;
        let random: [u8; 10] = self.rng.gen();
        uuid::Builder::from_unix_timestamp_millis(self.millis, &random).into_uuid()
    }
}

/// A copy of a unit ready to append: (stream, events).
type Appends = Vec<(StreamId, Vec<NewEvent>)>;

fn render(unit: &Unit, values: &[String], ids: &mut Ids) -> anyhow::Result<Appends> {
    let correlation = ids.next();
    let mut event_ids = Vec::with_capacity(unit.events);
    let mut out = Vec::with_capacity(unit.streams.len());
    for (stream, shapes) in &unit.streams {
        let mut events = Vec::with_capacity(shapes.len());
        for s in shapes {
            let event_id = ids.next();
            event_ids.push(event_id);
            let mut metadata: NewMetadata = serde_json::from_str(&s.metadata.fill(values))?;
            metadata.correlation_id = correlation;
            metadata.causation_id = s.caused_by.and_then(|i| event_ids.get(i).copied());
            events.push(NewEvent {
                event_id,
                event_type: s.event_type.clone(),
                schema_version: s.schema_version,
                data: serde_json::from_str(&s.data.fill(values))?,
                metadata,
            });
        }
        out.push((StreamId::parse(stream.fill(values))?, events));
    }
    Ok(out)
}

/// The shape of a data set.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Templates; the first `hot_templates` are hot, then one in three is
    /// FREE.
    pub templates: usize,
    pub hot_templates: usize,
    /// Subscriptions `[from, to)` of this load (ids depend on the index, so
    /// a data set can be grown in steps).
    pub subscriptions: std::ops::Range<usize>,
    /// The first `hot_subscriptions` subscribe (ACTIVE) to hot templates.
    pub hot_subscriptions: usize,
    /// Load the templates and the shared streams (the first step only).
    pub with_templates: bool,
}

impl Spec {
    fn template_kind(&self, i: usize) -> Kind {
        if i < self.hot_templates {
            Kind::Hot
        } else if i % 3 == 0 {
            Kind::Free
        } else {
            Kind::Cold
        }
    }
}

/// Template `i`'s hole values.
fn template_values(spec: &Spec, scenario: &Scenario, i: usize) -> Vec<String> {
    let mut ids = Ids::new(SEED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut v: Vec<String> = (0..scenario.template_holes - 1)
        .map(|_| ids.next().to_string())
        .collect();
    let kind = match spec.template_kind(i) {
        Kind::Hot => "hot",
        Kind::Cold => "cold",
        Kind::Free => "free",
    };
    v.push(format!("{NAME_MARK} {kind} {i}"));
    v
}

/// What a load wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub events: u64,
    pub templates: u64,
    pub subscriptions: u64,
    pub active: u64,
    pub paused: u64,
    pub hot_active: u64,
    pub seconds: f64,
}

/// Appends the data set `spec` describes to `store`.
pub async fn load(
    store: &Arc<dyn EventStore>,
    scenario: &Scenario,
    spec: Spec,
) -> anyhow::Result<Loaded> {
    let start = Instant::now();
    let mut loaded = Loaded::default();
    if spec.with_templates {
        for (stream, events) in &scenario.shared {
            let events = events
                .iter()
                .map(|e| NewEvent {
                    event_id: e.event_id,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    data: e.data.clone(),
                    metadata: NewMetadata {
                        actor: e.metadata.actor.clone(),
                        correlation_id: e.metadata.correlation_id,
                        causation_id: e.metadata.causation_id,
                        idempotency_key: e.metadata.idempotency_key.clone(),
                    },
                })
                .collect::<Vec<_>>();
            loaded.events += events.len() as u64;
            store
                .append(stream, ExpectedRevision::NoStream, events)
                .await?;
        }
        let mut ids = Ids::new(SEED);
        let mut appends = Vec::new();
        for i in 0..spec.templates {
            let values = template_values(&spec, scenario, i);
            let unit = &scenario.templates[&spec.template_kind(i)];
            loaded.events += unit.events as u64;
            appends.extend(render(unit, &values, &mut ids)?);
        }
        loaded.templates = spec.templates as u64;
        append_all(store, appends.into_iter().map(|a| vec![a])).await?;
    }
    let templates_of = |kind: Kind| -> Vec<usize> {
        (0..spec.templates)
            .filter(|&i| spec.template_kind(i) == kind)
            .collect()
    };
    let (hot, cold, free) = (
        templates_of(Kind::Hot),
        templates_of(Kind::Cold),
        templates_of(Kind::Free),
    );
    if hot.is_empty() || cold.is_empty() || free.is_empty() {
        bail!("a data set needs at least one template of each kind");
    }
    let template_cache: HashMap<usize, Vec<String>> = HashMap::new();
    let template_cache = std::sync::Mutex::new(template_cache);
    let mut rng = StdRng::seed_from_u64(SEED.wrapping_add(spec.subscriptions.start as u64));
    let mut ids = Ids::new(SEED.wrapping_add(1 + spec.subscriptions.start as u64));
    let mut units = Vec::new();
    for j in spec.subscriptions.clone() {
        let (kind, template) = if j < spec.hot_subscriptions {
            (SubKind::HotActive, hot[j % hot.len()])
        } else {
            match rng.gen_range(0..10) {
                0..=4 => (SubKind::ColdActive, cold[rng.gen_range(0..cold.len())]),
                5 => (SubKind::ColdPaused, cold[rng.gen_range(0..cold.len())]),
                _ => (SubKind::FreeActive, free[rng.gen_range(0..free.len())]),
            }
        };
        let mut values = {
            let mut cache = template_cache
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            cache
                .entry(template)
                .or_insert_with(|| template_values(&spec, scenario, template))
                .clone()
        };
        let email = format!("customer{j}@bench.basketry.dev");
        let user = UserId::from_email(&Email::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?);
        values.push(email);
        values.push(user.to_string());
        for _ in 2..scenario.subscription_holes[&kind] {
            values.push(ids.next().to_string());
        }
        let unit = &scenario.subscriptions[&kind];
        loaded.events += unit.events as u64;
        loaded.subscriptions += 1;
        match kind {
            SubKind::ColdPaused => loaded.paused += 1,
            SubKind::HotActive => {
                loaded.active += 1;
                loaded.hot_active += 1
            }
            _ => loaded.active += 1,
        }
        units.push(render(unit, &values, &mut ids)?);
        if units.len() >= 50_000 {
            append_all(store, std::mem::take(&mut units).into_iter()).await?;
        }
    }
    append_all(store, units.into_iter()).await?;
    loaded.seconds = start.elapsed().as_secs_f64();
    Ok(loaded)
}

/// Appends units concurrently; the streams of one unit in order.
async fn append_all(
    store: &Arc<dyn EventStore>,
    units: impl Iterator<Item = Appends>,
) -> anyhow::Result<()> {
    let mut results = futures::stream::iter(units.map(|unit| {
        let store = Arc::clone(store);
        async move {
            for (stream, events) in unit {
                store
                    .append(&stream, ExpectedRevision::NoStream, events)
                    .await
                    .with_context(|| format!("appending to {stream}"))?;
            }
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(IN_FLIGHT);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(())
}

/// Checks the projected read models against what was loaded: subscriptions
/// by status and templates. Returns a one-line summary.
pub async fn check_counts(read_db: &sqlx::AnyPool, loaded: &Loaded) -> anyhow::Result<String> {
    let count = |sql: &'static str| async move {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(read_db).await?;
        anyhow::Ok(n as u64)
    };
    let active = count("SELECT COUNT(*) FROM rm_subscriptions WHERE status = 'ACTIVE'").await?;
    let paused = count("SELECT COUNT(*) FROM rm_subscriptions WHERE status = 'PAUSED'").await?;
    let templates = count("SELECT COUNT(*) FROM rm_baskets").await?;
    let summary = format!(
        "read models: {active} ACTIVE and {paused} PAUSED subscriptions, {templates} baskets \
         (loaded {} ACTIVE, {} PAUSED, {} templates)",
        loaded.active, loaded.paused, loaded.templates
    );
    if active != loaded.active || paused != loaded.paused || templates != loaded.templates {
        bail!("the projected data does not match what was loaded: {summary}");
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_refills_every_occurrence_of_its_tokens() {
        let id = "0193c0de-0000-7000-8000-000000000001".to_string();
        let text =
            format!(r#"{{"basket_id":"{id}","name":"Benchmark template hot","again":"{id}"}}"#);
        let shape = Shape::of(&text, &[id.clone(), format!("{NAME_MARK} hot")]);
        let filled = shape.fill(&["X".into(), "Y".into()]);
        assert_eq!(filled, r#"{"basket_id":"X","name":"Y","again":"X"}"#);
        // Filled with the original tokens, it is the original text.
        assert_eq!(shape.fill(&[id, format!("{NAME_MARK} hot")]), text);
    }

    #[test]
    fn uuids_are_found_in_json_text_and_nothing_else() {
        let mut found = BTreeSet::new();
        uuids_in(
            r#"{"a":"0193c0de-0000-7000-8000-000000000001","b":"not-a-uuid","c":["6f0e2b7a-1c2d-5e3f-8a9b-0c1d2e3f4a5b"]}"#,
            &mut found,
        );
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![
                "0193c0de-0000-7000-8000-000000000001".to_string(),
                "6f0e2b7a-1c2d-5e3f-8a9b-0c1d2e3f4a5b".to_string()
            ]
        );
    }

    #[test]
    fn generated_ids_are_deterministic_distinct_v7() {
        let a: Vec<Uuid> = {
            let mut ids = Ids::new(7);
            (0..100).map(|_| ids.next()).collect()
        };
        let mut ids = Ids::new(7);
        let b: Vec<Uuid> = (0..100).map(|_| ids.next()).collect();
        assert_eq!(a, b);
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 100);
        assert!(a.iter().all(|u| u.get_version_num() == 7));
    }
}
