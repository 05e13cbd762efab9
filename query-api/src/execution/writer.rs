//! Writing the plan: the streamed body of `GET /execution/plan`, in its
//! JSON and ndjson forms, read one keyset slice of strategies and
//! subscribers at a time and sent in chunks of [`super::CHUNK_BYTES`].

use super::*;

/// The response form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Ndjson,
}

/// Why writing the plan stopped early.
pub(super) enum Stop {
    /// The client went away: nothing to report.
    Gone,
    /// The read failed.
    Failed(QueryError),
}

impl From<QueryError> for Stop {
    fn from(e: QueryError) -> Self {
        Stop::Failed(e)
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Failed(e.into())
    }
}

/// Writes the body in chunks into the channel.
pub(super) struct Writer {
    format: Format,
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, QueryError>>,
    /// No item written yet in the current JSON list.
    first: bool,
    orders: u64,
    skipped: u64,
}

impl Writer {
    pub(super) fn new(format: Format, tx: mpsc::Sender<Result<Bytes, QueryError>>) -> Self {
        Self {
            format,
            buf: Vec::with_capacity(CHUNK_BYTES + 4096),
            tx,
            first: true,
            orders: 0,
            skipped: 0,
        }
    }

    pub(super) fn raw(&mut self, text: &str) {
        self.buf.extend_from_slice(text.as_bytes());
    }

    pub(super) fn item(&mut self, item: &impl Serialize) -> Result<(), Stop> {
        self.start_item();
        serde_json::to_writer(&mut self.buf, item)
            .map_err(|e| QueryError::Corrupt(format!("a plan line does not serialise: {e}")))?;
        self.end_item();
        Ok(())
    }

    pub(super) fn text_value(&mut self, value: &str) {
        // Strings of the plan's own making (timestamps, weekdays) always
        // serialise; the fallback only keeps the JSON valid.
        let quoted = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        self.raw(&quoted);
    }

    pub(super) async fn flush(&mut self) -> Result<(), Stop> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES + 4096),
        ));
        match tokio::time::timeout(STALLED_CLIENT, self.tx.send(Ok(chunk))).await {
            Ok(sent) => sent.map_err(|_| Stop::Gone),
            Err(_) => {
                tracing::warn!(
                    "execution plan: the client took no data for {} s; cut off",
                    STALLED_CLIENT.as_secs()
                );
                Err(Stop::Gone)
            }
        }
    }

    pub(super) async fn maybe_flush(&mut self) -> Result<(), Stop> {
        if self.buf.len() >= CHUNK_BYTES {
            self.flush().await
        } else {
            Ok(())
        }
    }

    pub(super) fn begin(&mut self, plan: &PlanMinute) {
        if self.format == Format::Json {
            self.raw("{\"at\":");
            self.text_value(&plan.at_text());
            self.raw(",\"minute\":");
            self.text_value(&plan.minute_text());
            self.raw(",\"weekday\":");
            match plan.weekday {
                Some(day) => self.text_value(day),
                None => self.raw("null"),
            }
            self.raw(",\"orders\":[");
            self.first = true;
        }
    }

    pub(super) fn between_lists(&mut self) {
        if self.format == Format::Json {
            self.raw("],\"skipped\":[");
            self.first = true;
        }
    }

    pub(super) fn end(&mut self, plan: &PlanMinute) -> Result<(), Stop> {
        match self.format {
            Format::Json => {
                let counts = format!(
                    "],\"order_count\":{},\"skipped_count\":{}}}",
                    self.orders, self.skipped
                );
                self.raw(&counts);
                Ok(())
            }
            Format::Ndjson => {
                let (at, minute) = (plan.at_text(), plan.minute_text());
                let end = shapes::PlanEnd {
                    kind: shapes::EndKind::End,
                    at: shapes::Timestamp::stored(at),
                    minute: shapes::Timestamp::stored(minute),
                    weekday: plan.weekday.map(str::to_string),
                    order_count: self.orders,
                    skipped_count: self.skipped,
                };
                self.item(&end)
            }
        }
    }

    /// Starts an item: a comma between the items of a JSON list.
    pub(super) fn start_item(&mut self) {
        if self.format == Format::Json && !self.first {
            self.buf.push(b',');
        }
        self.first = false;
    }

    /// Ends an item: a line break in ndjson.
    pub(super) fn end_item(&mut self) {
        if self.format == Format::Ndjson {
            self.buf.push(b'\n');
        }
    }

    /// Writes the orders of one leg for one allocation (or the owner):
    /// `floor(leg_lots × multiplier)` lots in orders of at most
    /// `max_per_order`, each order its three parts and its sizes.
    pub(super) async fn leg_orders(
        &mut self,
        head: &[u8],
        who: &[u8],
        leg: (&[u8], u32),
        multiplier: LotMultiplier,
        max_per_order: u32,
    ) -> Result<(), Stop> {
        let (leg_part, leg_lots) = leg;
        let total = multiplier.apply(leg_lots);
        let max = u64::from(max_per_order.max(1));
        let slices = total.div_ceil(max);
        for slice in 1..=slices {
            let lots = (total - (slice - 1) * max).min(max);
            self.start_item();
            self.buf.extend_from_slice(head);
            self.buf.extend_from_slice(who);
            self.buf.extend_from_slice(leg_part);
            write!(
                self.buf,
                "\"total_lots\":{total},\"lots\":{lots},\"slice\":{slice},\"slices\":{slices}}}"
            )
            .map_err(|e| QueryError::Corrupt(format!("a plan line does not render: {e}")))?;
            self.end_item();
            self.orders += 1;
            self.maybe_flush().await?;
        }
        Ok(())
    }

    /// Writes the owner's orders of a strategy of a basket never published.
    pub(super) async fn owner_orders(
        &mut self,
        strategy: &StrategyRow,
        parts: &StrategyParts,
    ) -> Result<(), Stop> {
        let max = MaxLotsPerOrder::default().get();
        let who = members(&WhoPart {
            user_id: &strategy.owner_id,
            subscription_id: None,
            partner_id: None,
            allocation_id: None,
            broker_id: None,
            client_id: None,
            lot_multiplier: LotMultiplier::ONE,
            max_lots_per_order: max,
        })?;
        for (leg, part) in strategy.legs.iter().zip(&parts.legs) {
            self.leg_orders(
                &parts.owner_head,
                &who,
                (part, leg.lots.get()),
                LotMultiplier::ONE,
                max,
            )
            .await?;
        }
        Ok(())
    }

    /// Writes what `pass` writes of one subscription of a strategy.
    pub(super) async fn subscriber(
        &mut self,
        pass: Pass,
        strategy: &StrategyRow,
        parts: &StrategyParts,
        sub: &SubscriberRow,
    ) -> Result<(), Stop> {
        let allocations = allocations_of(&sub.allocations)?;
        let partner_id = sub.partner_id.as_deref();
        let skipped = |allocation_id: Option<String>,
                       leg_index: Option<u32>,
                       code: shapes::SkipCode,
                       reason: String| shapes::PlanSkipped {
            kind: shapes::SkippedKind::Skipped,
            phase: strategy.phase.shape(),
            basket_id: strategy.basket_id.clone(),
            template_id: strategy.basket_id.clone(),
            strategy_id: strategy.strategy_id.clone(),
            user_id: sub.user_id.clone(),
            subscription_id: sub.subscription_id.clone(),
            partner_id: partner_id.map(str::to_string),
            allocation_id,
            leg_index,
            code,
            reason,
        };
        if allocations.is_empty() {
            if pass == Pass::Skipped {
                self.item(&skipped(
                    None,
                    None,
                    shapes::SkipCode::NoAllocation,
                    "the subscription has no broker allocation".into(),
                ))?;
                self.skipped += 1;
                self.maybe_flush().await?;
            }
            return Ok(());
        }
        for allocation in &allocations {
            match pass {
                Pass::Orders => {
                    let max = allocation.max_lots_per_order.get();
                    let who = members(&WhoPart {
                        user_id: &sub.user_id,
                        subscription_id: Some(&sub.subscription_id),
                        partner_id,
                        allocation_id: Some(allocation.allocation_id.to_string()),
                        broker_id: Some(allocation.broker_id.as_str()),
                        client_id: Some(allocation.client_id.as_str()),
                        lot_multiplier: allocation.lot_multiplier,
                        max_lots_per_order: max,
                    })?;
                    for (leg, part) in strategy.legs.iter().zip(&parts.legs) {
                        self.leg_orders(
                            &parts.subscription_head,
                            &who,
                            (part, leg.lots.get()),
                            allocation.lot_multiplier,
                            max,
                        )
                        .await?;
                    }
                }
                Pass::Skipped => {
                    for (leg_index, leg) in strategy.legs.iter().enumerate() {
                        let lots = leg.lots.get();
                        if allocation.lot_multiplier.apply(lots) == 0 {
                            let reason = format!(
                                "floor({lots} lots × lot_multiplier {}) is 0 lots",
                                allocation.lot_multiplier
                            );
                            self.item(&skipped(
                                Some(allocation.allocation_id.to_string()),
                                Some(u32::try_from(leg_index).unwrap_or(u32::MAX)),
                                shapes::SkipCode::ZeroLots,
                                reason,
                            ))?;
                            self.skipped += 1;
                            self.maybe_flush().await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// One slice of the minute's strategies, after `after`.
pub(super) async fn strategy_slice(
    conn: &mut AnyConnection,
    weekday: &str,
    minute_of_day: i64,
    after: &(i64, String, String),
) -> Result<Vec<StrategyRow>, QueryError> {
    let rows = sqlx::query(SCHEDULE_SQL)
        .bind(weekday.to_string())
        .bind(minute_of_day)
        .bind(after.0)
        .bind(after.1.clone())
        .bind(after.2.clone())
        .bind(SLICE_ROWS)
        .fetch_all(conn)
        .await?;
    rows.iter().map(StrategyRow::from_row).collect()
}

/// One slice of a template's ACTIVE subscriptions, after `after`.
pub(super) async fn subscriber_slice(
    conn: &mut AnyConnection,
    template_id: &str,
    after: &(i64, String),
) -> Result<Vec<SubscriberRow>, QueryError> {
    let rows = sqlx::query(SUBSCRIBERS_SQL)
        .bind(template_id.to_string())
        .bind(after.0)
        .bind(after.1.clone())
        .bind(SLICE_ROWS)
        .fetch_all(conn)
        .await?;
    rows.iter().map(SubscriberRow::from_row).collect()
}

/// Writes what `pass` writes of one strategy: the owner's orders, then its
/// subscribers' slice by slice.
pub(super) async fn write_strategy(
    conn: &mut AnyConnection,
    pass: Pass,
    strategy: &StrategyRow,
    writer: &mut Writer,
) -> Result<(), Stop> {
    let parts = StrategyParts::of(strategy)?;
    if pass == Pass::Orders && strategy.owner_trades {
        writer.owner_orders(strategy, &parts).await?;
    }
    let mut after = (i64::MIN, String::new());
    loop {
        let slice = subscriber_slice(conn, &strategy.key.1, &after).await?;
        for sub in &slice {
            writer.subscriber(pass, strategy, &parts, sub).await?;
        }
        match slice.last() {
            Some(last) if slice.len() >= SLICE_ROWS as usize => after = last.key.clone(),
            _ => return Ok(()),
        }
    }
}

/// Writes the whole plan of `plan` into `writer`.
pub(super) async fn write_plan(
    db: &AnyPool,
    plan: &PlanMinute,
    writer: &mut Writer,
) -> Result<(), Stop> {
    writer.begin(plan);
    if let Some(weekday) = plan.weekday {
        let mut tx = snapshot(db).await?;
        for pass in [Pass::Orders, Pass::Skipped] {
            if pass == Pass::Skipped {
                writer.between_lists();
            }
            let mut after = (-1, String::new(), String::new());
            loop {
                let slice = strategy_slice(&mut tx, weekday, plan.minute_of_day(), &after).await?;
                for strategy in &slice {
                    write_strategy(&mut tx, pass, strategy, writer).await?;
                }
                match slice.last() {
                    Some(last) if slice.len() >= SLICE_ROWS as usize => after = last.key.clone(),
                    _ => break,
                }
            }
        }
        tx.commit().await?;
    } else {
        writer.between_lists();
    }
    writer.end(plan)?;
    writer.flush().await
}

/// Runs [`write_plan`] and reports how it ended into the channel.
pub(super) async fn produce(
    db: AnyPool,
    plan: PlanMinute,
    format: Format,
    tx: mpsc::Sender<Result<Bytes, QueryError>>,
) {
    let mut writer = Writer::new(format, tx.clone());
    match write_plan(&db, &plan, &mut writer).await {
        Ok(()) | Err(Stop::Gone) => {}
        Err(Stop::Failed(e)) => {
            tracing::error!(error = %e, minute = %plan.minute_text(), "execution plan failed");
            // The client may be gone too; then there is no one to tell.
            let _ = tx.send(Err(e)).await;
        }
    }
}
