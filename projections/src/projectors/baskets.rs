//! `baskets`: every basket with its strategies and, once published, its
//! marketplace configuration (`rm_baskets`), plus one row per template tag
//! (`rm_template_tags`) for the `tag` filter.
//!
//! `subscriber_count` is the number of subscriptions not cancelled: +1 on
//! `SubscribedToTemplate`, −1 on `SubscriptionCancelled` of the template.
//! Each event is applied exactly once (the runtime's checkpoint commits with
//! the rows), so the counter stays exact without re-counting.
//!
//! `performance_metrics` stays NULL: no event carries metrics today.

use basketry_domain::basket::{BasketEvent, MarketplaceConfig, Strategy};
use basketry_domain::subscription::SubscriptionEvent;
use basketry_domain::TemplateId;
use basketry_store::RecordedEvent;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::{execute_rows, in_list_sql, json, one_row, parse_json, ts, AnyQuery, BindRow};
use crate::runtime::db_int;
use crate::{DecodedEvent, ProjectionError, Projector};

/// Projects baskets and templates.
#[derive(Debug, Clone, Copy, Default)]
pub struct BasketsProjector;

#[async_trait::async_trait]
impl Projector for BasketsProjector {
    fn name(&self) -> &'static str {
        "baskets"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_baskets", "rm_template_tags"]
    }

    /// Basket events are applied one by one; the subscriber counts of the
    /// subscription events between two of them are summed per template and
    /// written with one statement (before the next basket event, and at the
    /// end of the batch), so every count update still meets its template's
    /// row exactly when the one-by-one update would have.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        let mut counts = Counts::default();
        for decoded in events {
            let event = &decoded.event;
            if let Some(e) = decoded.basket()? {
                counts.flush(conn, events).await?;
                apply_basket(conn, event, e).await?;
                continue;
            }
            // Only two subscription events move the counter; the others are
            // not looked at here (the subscriptions projector is loud about
            // them).
            if matches!(
                event.event_type.as_str(),
                "SubscribedToTemplate" | "SubscriptionCancelled"
            ) {
                match decoded.subscription()? {
                    Some(SubscriptionEvent::SubscribedToTemplate(e)) => {
                        counts.add(&e.template_id, 1, decoded);
                    }
                    Some(SubscriptionEvent::SubscriptionCancelled(e)) => {
                        counts.add(&e.template_id, -1, decoded);
                    }
                    _ => {}
                }
            }
        }
        counts.flush(conn, events).await
    }
}

/// Subscriber count changes not yet written: per template, the sum and the
/// first event that asked for it (named if the template has no row).
#[derive(Default)]
struct Counts {
    deltas: Vec<Delta>,
    index: std::collections::HashMap<String, usize>,
}

struct Delta {
    template_id: String,
    delta: i64,
    /// Position of the first event of the batch that moved it.
    position: basketry_store::Position,
}

impl BindRow for Delta {
    const COLS: usize = 2;
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query.bind(self.template_id.as_str()).bind(self.delta)
    }
}

impl Counts {
    fn add(&mut self, template_id: &TemplateId, delta: i64, event: &DecodedEvent) {
        let id = template_id.to_string();
        match self.index.get(&id) {
            Some(&i) => self.deltas[i].delta += delta,
            None => {
                self.index.insert(id.clone(), self.deltas.len());
                self.deltas.push(Delta {
                    template_id: id,
                    delta,
                    position: event.event.position,
                });
            }
        }
    }

    /// Writes the pending changes; a template without a row is an
    /// inconsistency of the first event that counted it.
    async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        if self.deltas.is_empty() {
            return Ok(());
        }
        let updated = execute_rows(
            conn,
            "UPDATE rm_baskets SET subscriber_count = subscriber_count + d.column2 FROM (VALUES",
            ") AS d WHERE rm_baskets.basket_id = d.column1",
            &self.deltas,
        )
        .await?;
        if updated != self.deltas.len() as u64 {
            let ids: Vec<String> = self.deltas.iter().map(|d| d.template_id.clone()).collect();
            let mut found = std::collections::HashSet::new();
            for chunk in ids.chunks(1_000) {
                let sql = in_list_sql(
                    conn,
                    "SELECT basket_id FROM rm_baskets WHERE basket_id IN",
                    chunk.len(),
                    "",
                );
                let mut query = sqlx::query_scalar::<_, String>(&sql);
                for id in chunk {
                    query = query.bind(id.as_str());
                }
                found.extend(query.fetch_all(&mut *conn).await?);
            }
            let missing = self
                .deltas
                .iter()
                .filter(|d| !found.contains(&d.template_id))
                .min_by_key(|d| d.position);
            if let Some(event) = missing.and_then(|d| {
                events
                    .iter()
                    .find(|e| e.event.position == d.position)
                    .map(|e| &e.event)
            }) {
                return Err(ProjectionError::inconsistent(
                    event,
                    "expected one template row, found 0",
                ));
            }
        }
        self.deltas.clear();
        self.index.clear();
        Ok(())
    }
}

async fn apply_basket(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    e: &BasketEvent,
) -> Result<(), ProjectionError> {
    let revision = db_int(e.revision())?;
    let at = ts(&e.at());
    match e {
        BasketEvent::BasketCreated(c) => {
            let strategies = strategies_json(event, &c.strategies)?;
            sqlx::query(
                "INSERT INTO rm_baskets (basket_id, owner_id, owner_is_admin, name, description, \
                 category, strategies, strategy_count, revision, created_at, updated_at, \
                 created_position, strategy_previews) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12) \
                 ON CONFLICT (basket_id) DO UPDATE SET owner_id = excluded.owner_id, \
                 owner_is_admin = excluded.owner_is_admin, name = excluded.name, \
                 description = excluded.description, category = excluded.category, \
                 strategies = excluded.strategies, strategy_count = excluded.strategy_count, \
                 revision = excluded.revision, created_at = excluded.created_at, \
                 updated_at = excluded.updated_at, created_position = excluded.created_position, \
                 strategy_previews = excluded.strategy_previews",
            )
            .bind(c.basket_id.to_string())
            .bind(c.owner_id.to_string())
            .bind(i64::from(c.owner_is_admin))
            .bind(c.name.to_string())
            .bind(c.description.to_string())
            .bind(c.category.to_string())
            .bind(json(event, &strategies)?)
            .bind(strategies.len() as i64)
            .bind(revision)
            .bind(at)
            .bind(db_int(event.position.commit)?)
            .bind(json(event, &strategy_previews(&strategies))?)
            .execute(&mut *conn)
            .await?;
        }
        BasketEvent::BasketUpdated(u) => {
            let result = sqlx::query(
                "UPDATE rm_baskets SET name = $2, description = $3, category = $4, \
                 revision = $5, updated_at = $6 WHERE basket_id = $1",
            )
            .bind(u.basket_id.to_string())
            .bind(u.name.to_string())
            .bind(u.description.to_string())
            .bind(u.category.to_string())
            .bind(revision)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "basket")?;
        }
        BasketEvent::StrategyAdded(s) => {
            let mut strategies = load_strategies(conn, event, &s.basket_id).await?;
            strategies.push(strategy_json(event, &s.strategy)?);
            save_strategies(conn, event, &s.basket_id, &strategies, revision, &at).await?;
        }
        BasketEvent::StrategyReplaced(s) => {
            let mut strategies = load_strategies(conn, event, &s.basket_id).await?;
            let id = Value::String(s.strategy.strategy_id.to_string());
            let replacement = strategy_json(event, &s.strategy)?;
            for slot in strategies
                .iter_mut()
                .filter(|v| v.get("strategy_id") == Some(&id))
            {
                *slot = replacement.clone();
            }
            save_strategies(conn, event, &s.basket_id, &strategies, revision, &at).await?;
        }
        BasketEvent::StrategyRemoved(s) => {
            let mut strategies = load_strategies(conn, event, &s.basket_id).await?;
            let id = Value::String(s.strategy_id.to_string());
            strategies.retain(|v| v.get("strategy_id") != Some(&id));
            save_strategies(conn, event, &s.basket_id, &strategies, revision, &at).await?;
        }
        BasketEvent::TemplatePublished(p) => {
            let result = sqlx::query(
                "UPDATE rm_baskets SET is_template = 1, visibility = $2, pricing_type = $3, \
                 monthly_fee = $4, currency = $5, difficulty_level = $6, tags = $7, \
                 template_category = $8, published_at = $9, \
                 published_position = COALESCE(published_position, $10), \
                 revision = $11, updated_at = $9 WHERE basket_id = $1",
            )
            .bind(p.template_id.to_string())
            .bind(p.config.visibility.to_string())
            .bind(p.config.pricing.pricing_type().to_string())
            .bind(p.config.pricing.monthly_fee().amount_minor())
            .bind(p.config.pricing.monthly_fee().currency().to_string())
            .bind(p.config.difficulty_level.to_string())
            .bind(json(event, &p.config.tags)?)
            .bind(p.config.category.to_string())
            .bind(at)
            .bind(db_int(event.position.commit)?)
            .bind(revision)
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "basket")?;
            replace_tags(conn, &p.template_id, &p.config).await?;
        }
        BasketEvent::MarketplaceConfigUpdated(u) => {
            let result = sqlx::query(
                "UPDATE rm_baskets SET visibility = $2, pricing_type = $3, monthly_fee = $4, \
                 currency = $5, difficulty_level = $6, tags = $7, template_category = $8, \
                 revision = $9, updated_at = $10 WHERE basket_id = $1",
            )
            .bind(u.template_id.to_string())
            .bind(u.config.visibility.to_string())
            .bind(u.config.pricing.pricing_type().to_string())
            .bind(u.config.pricing.monthly_fee().amount_minor())
            .bind(u.config.pricing.monthly_fee().currency().to_string())
            .bind(u.config.difficulty_level.to_string())
            .bind(json(event, &u.config.tags)?)
            .bind(u.config.category.to_string())
            .bind(revision)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "basket")?;
            replace_tags(conn, &u.template_id, &u.config).await?;
        }
        BasketEvent::TemplateUnpublished(u) => {
            // The configuration (and its tag rows) stays for the record, as
            // in the domain; `is_template = 0` hides the template.
            let result = sqlx::query(
                "UPDATE rm_baskets SET is_template = 0, revision = $2, updated_at = $3 \
                 WHERE basket_id = $1",
            )
            .bind(u.template_id.to_string())
            .bind(revision)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "basket")?;
        }
    }
    Ok(())
}

/// The keys of a strategy that its preview keeps (`null` where the
/// strategy has none).
const PREVIEW_KEYS: [&str; 7] = [
    "strategy_id",
    "name",
    "underlying",
    "product",
    "entry_time",
    "exit_time",
    "trading_days",
];

/// The strategy previews anyone may see (`rm_baskets.strategy_previews`):
/// what runs when, and how many legs, but not the legs themselves (a paid
/// template's logic is not given away; docs/reference/api.md#marketplace-queries). Each preview holds the
/// [`PREVIEW_KEYS`] and `leg_count`. The query API serves the column as
/// stored, and renders the same value from `strategies` for rows projected
/// before the column existed.
pub fn strategy_previews(strategies: &[Value]) -> Value {
    Value::Array(
        strategies
            .iter()
            .map(|s| {
                let mut preview = serde_json::Map::new();
                for key in PREVIEW_KEYS {
                    preview.insert(key.into(), s.get(key).cloned().unwrap_or(Value::Null));
                }
                let legs = s.get("legs").and_then(Value::as_array).map_or(0, Vec::len);
                preview.insert("leg_count".into(), Value::from(legs));
                Value::Object(preview)
            })
            .collect(),
    )
}

/// A strategy in the events' own JSON shape.
fn strategy_json(event: &RecordedEvent, strategy: &Strategy) -> Result<Value, ProjectionError> {
    serde_json::to_value(strategy).map_err(|e| ProjectionError::inconsistent(event, e.to_string()))
}

fn strategies_json(
    event: &RecordedEvent,
    strategies: &[Strategy],
) -> Result<Vec<Value>, ProjectionError> {
    strategies.iter().map(|s| strategy_json(event, s)).collect()
}

async fn load_strategies(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    basket_id: &TemplateId,
) -> Result<Vec<Value>, ProjectionError> {
    let row = sqlx::query("SELECT strategies FROM rm_baskets WHERE basket_id = $1")
        .bind(basket_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ProjectionError::inconsistent(event, "no basket row"))?;
    let text: String = row.try_get("strategies")?;
    parse_json(event, "strategies", &text)
}

async fn save_strategies(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    basket_id: &TemplateId,
    strategies: &[Value],
    revision: i64,
    at: &str,
) -> Result<(), ProjectionError> {
    let result = sqlx::query(
        "UPDATE rm_baskets SET strategies = $2, strategy_count = $3, revision = $4, \
         updated_at = $5, strategy_previews = $6 WHERE basket_id = $1",
    )
    .bind(basket_id.to_string())
    .bind(json(event, &strategies)?)
    .bind(strategies.len() as i64)
    .bind(revision)
    .bind(at)
    .bind(json(event, &strategy_previews(strategies))?)
    .execute(&mut *conn)
    .await?;
    one_row(result, event, "basket")
}

async fn replace_tags(
    conn: &mut AnyConnection,
    template_id: &TemplateId,
    config: &MarketplaceConfig,
) -> Result<(), ProjectionError> {
    sqlx::query("DELETE FROM rm_template_tags WHERE template_id = $1")
        .bind(template_id.to_string())
        .execute(&mut *conn)
        .await?;
    for tag in &config.tags {
        sqlx::query(
            "INSERT INTO rm_template_tags (template_id, tag) VALUES ($1, $2) \
             ON CONFLICT (template_id, tag) DO NOTHING",
        )
        .bind(template_id.to_string())
        .bind(tag.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
