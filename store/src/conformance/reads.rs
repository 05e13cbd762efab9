//! Cases on reads: one stream, `$all` in order and in pages, subscriptions
//! from a checkpoint, and the head.

use super::*;

/// `read_stream` from revision `k` returns the stream's suffix.
pub async fn read_stream_from_a_middle_revision(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "middle")?;
    append(store, &s, ExpectedRevision::NoStream, evs(0..2)).await?;
    append(store, &s, ExpectedRevision::Exact(Revision(1)), evs(2..6)).await?;
    let full = read_stream(store, &s, Revision::START).await?;
    check_eq!(full.len(), 6, "events in the stream");
    for from in 0..=6u64 {
        let part = read_stream(store, &s, Revision(from)).await?;
        check!(
            part.as_slice() == &full[from as usize..],
            "read_stream from {from} returned revisions {:?}",
            part.iter().map(|e| e.revision.0).collect::<Vec<_>>()
        );
    }
    for beyond in [7, 1_000, u32::MAX as u64] {
        let part = read_stream(store, &s, Revision(beyond)).await?;
        check!(
            part.is_empty(),
            "read_stream from {beyond} past the end returned {} events",
            part.len()
        );
    }
    Ok(())
}

/// A stream nobody wrote reads as empty, not as an error.
pub async fn missing_stream_reads_empty(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "never-written")?;
    for from in [0, 1, 50] {
        let read = read_stream(store, &s, Revision(from)).await?;
        check!(
            read.is_empty(),
            "missing stream from {from}: {} events",
            read.len()
        );
    }
    // A stream whose name extends a written one is still missing.
    let written = stream(&fx.ns, "written")?;
    append(store, &written, ExpectedRevision::NoStream, vec![ev(0)]).await?;
    let longer = stream(&fx.ns, "written-not")?;
    check!(
        read_stream(store, &longer, Revision::START)
            .await?
            .is_empty(),
        "a stream whose name extends a written one is not empty"
    );
    let shorter = stream(&fx.ns, "writte")?;
    check!(
        read_stream(store, &shorter, Revision::START)
            .await?
            .is_empty(),
        "a stream whose name is a prefix of a written one is not empty"
    );
    Ok(())
}

/// `$all` holds every stream's events in the order they were appended.
pub async fn read_all_orders_events_across_streams(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let names = ["a", "b", "c"];
    let streams: Vec<StreamId> = names
        .iter()
        .map(|n| stream(&fx.ns, &format!("order-{n}")))
        .collect::<Result<_, _>>()?;
    // (stream, number of events), appended one after another.
    let plan = [
        (0, 2),
        (1, 1),
        (0, 1),
        (2, 3),
        (1, 2),
        (0, 1),
        (2, 1),
        (1, 1),
    ];
    let mut expected_ids = Vec::new();
    let mut outcomes = Vec::new();
    let mut n = 0;
    for (k, count) in plan {
        let batch = evs(n..n + count);
        n += count;
        expected_ids.extend(batch.iter().map(|e| e.event_id));
        let o = append(store, &streams[k], ExpectedRevision::Any, batch).await?;
        if let Some((_, prev)) = outcomes.last() {
            let prev: &AppendOutcome = prev;
            check!(
                o.last_position > prev.last_position,
                "a later append's position {} is not after the earlier one's {}",
                o.last_position,
                prev.last_position
            );
        }
        outcomes.push((expected_ids.len() - 1, o));
    }
    let all = read_own(store, &fx.ns, start, 1000).await?;
    check!(
        ids(&all) == expected_ids,
        "read_all does not return the events in append order: revisions {:?}",
        all.iter()
            .map(|e| format!("{}@{}", e.stream_id, e.revision))
            .collect::<Vec<_>>()
    );
    check_positions_increase(&all, "read_all")?;
    for (index, o) in &outcomes {
        check_eq!(
            all[*index].position,
            o.last_position,
            "position of append's last event"
        );
    }
    for s in &streams {
        let from_all: Vec<RecordedEvent> =
            all.iter().filter(|e| &e.stream_id == s).cloned().collect();
        let from_stream = read_stream(store, s, Revision::START).await?;
        check!(
            from_all == from_stream,
            "{s}: the events read_all shows differ from read_stream's"
        );
        for (i, e) in from_all.iter().enumerate() {
            check_eq!(
                e.revision,
                Revision(i as u64),
                "{s}: revision order in read_all"
            );
        }
    }
    Ok(())
}

/// Paging through `$all` with `after` and `limit` returns each event
/// exactly once, in order, whatever the page size.
pub async fn read_all_pages_return_each_event_once(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let streams: Vec<StreamId> = (0..4)
        .map(|k| stream(&fx.ns, &format!("page-{k}")))
        .collect::<Result<_, _>>()?;
    for n in 0..25u64 {
        let batch = if n % 5 == 0 {
            evs(n * 10..n * 10 + 2)
        } else {
            vec![ev(n * 10)]
        };
        append(
            store,
            &streams[(n % 4) as usize],
            ExpectedRevision::Any,
            batch,
        )
        .await?;
    }
    let reference = read_own(store, &fx.ns, start, 10_000).await?;
    check_eq!(reference.len(), 30, "own events in $all");
    check_positions_increase(&reference, "read_all")?;
    let unique: HashSet<Uuid> = reference.iter().map(|e| e.event_id).collect();
    check_eq!(unique.len(), reference.len(), "distinct event ids in $all");

    for limit in [1, 2, 3, 7, 29, 30, 31, 1000] {
        let paged = read_own(store, &fx.ns, start, limit).await?;
        check!(
            paged == reference,
            "paging with limit {limit} returned {} own events, not the same {} as one big page",
            paged.len(),
            reference.len()
        );
    }
    // Starting after the k-th own event continues with the (k+1)-th.
    for k in [0, 1, 9, 28] {
        let page = store
            .read_all(Some(reference[k].position), 1)
            .await
            .ctx("read_all(after an own event, 1)")?;
        check_eq!(page.len(), 1, "events after own event {k} (limit 1)");
        let rest = read_own(store, &fx.ns, Some(reference[k].position), 5).await?;
        check!(
            rest.as_slice() == &reference[k + 1..],
            "reading after own event {k} did not return exactly the later own events"
        );
    }
    let after_last = read_own(store, &fx.ns, Some(reference[29].position), 100).await?;
    check!(
        after_last.is_empty(),
        "events after the last own event: {}",
        after_last.len()
    );

    // From the very beginning of the log. (On a fresh store `start` is
    // `None`, so the paging above already read the whole log from there; a
    // shared KurrentDB log may be too long to scan on every run.)
    let first = store.read_all(None, 1).await.ctx("read_all(None, 1)")?;
    check_eq!(first.len(), 1, "events at the start of a non-empty log");
    check!(
        first[0].position <= reference[0].position,
        "the log's first event {} comes after an own event at {}",
        first[0].position,
        reference[0].position
    );
    Ok(())
}

/// A subscription from a checkpoint delivers exactly the later events: the
/// stored ones, then the ones appended while it runs.
pub async fn subscribe_from_checkpoint_receives_exactly_the_later_events(
    fx: Fixture,
) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let a = stream(&fx.ns, "sub-a")?;
    let b = stream(&fx.ns, "sub-b")?;
    for n in 0..10u64 {
        let s = if n % 3 == 0 { &b } else { &a };
        append(store, s, ExpectedRevision::Any, vec![ev(n)]).await?;
    }
    let stored = read_own(store, &fx.ns, start, 1000).await?;
    check_eq!(stored.len(), 10, "own events before subscribing");
    const K: usize = 3;
    let checkpoint = stored[K].position;

    let mut sub = store
        .subscribe_all(Some(checkpoint))
        .await
        .ctx("subscribe_all(checkpoint)")?;
    // Appended before the subscription is first polled.
    let mut expected_later = Vec::new();
    for n in 10..12u64 {
        let e = ev(n);
        expected_later.push(e.event_id);
        append(store, &a, ExpectedRevision::Any, vec![e]).await?;
    }
    let caught_up = receive_own(&mut sub, &fx.ns, stored.len() - K - 1 + 2).await?;
    check!(
        caught_up[..stored.len() - K - 1] == stored[K + 1..],
        "the subscription did not start with exactly the stored events after the checkpoint: got {:?}",
        caught_up.iter().map(|e| e.position).collect::<Vec<_>>()
    );
    check_eq!(
        ids(&caught_up[stored.len() - K - 1..]),
        expected_later,
        "events appended right after subscribing"
    );
    // Appended while the subscription is live and waiting.
    let live_store = Arc::clone(&fx.store);
    let (a2, b2) = (a.clone(), b.clone());
    let writer = tokio::spawn(async move {
        let mut written = Vec::new();
        for n in 12..17u64 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let e = ev(n);
            written.push(e.event_id);
            let s = if n % 2 == 0 { &a2 } else { &b2 };
            append(&*live_store, s, ExpectedRevision::Any, vec![e]).await?;
            if n == 14 {
                // One multi-event append among the live ones.
                let batch = evs(140..143);
                written.extend(batch.iter().map(|e| e.event_id));
                append(&*live_store, &a2, ExpectedRevision::Any, batch).await?;
            }
        }
        Ok::<_, String>(written)
    });
    let live = receive_own(&mut sub, &fx.ns, 8).await?;
    let written = writer.await.ctx("writer task")??;
    check_eq!(ids(&live), written, "events appended while subscribed");
    let mut received = caught_up;
    received.extend(live);
    check_positions_increase(&received, "subscription")?;
    // Nothing more is owed: no duplicates, no phantom events.
    if let Some(extra) = next_own(&mut sub, &fx.ns, QUIET_PERIOD).await? {
        return Err(format!(
            "the subscription delivered an extra event: {} rev {} at {}",
            extra.stream_id, extra.revision, extra.position
        ));
    }
    // And what it delivered is what the log holds after the checkpoint.
    let log = read_own(store, &fx.ns, Some(checkpoint), 1000).await?;
    check!(
        log == received,
        "the subscription's events differ from read_all's"
    );
    Ok(())
}

/// `head()` is the position of the newest event of the log.
pub async fn head_is_the_last_position(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let empty = store
        .read_all(None, 1)
        .await
        .ctx("read_all(None, 1)")?
        .is_empty();
    let head = store.head().await.ctx("head()")?;
    if empty {
        check_eq!(head, None, "head() of an empty log");
    } else {
        check!(head.is_some(), "head() is None but the log holds events");
    }
    let s = stream(&fx.ns, "head")?;
    let mut last = None;
    for n in 0..3u64 {
        let o = append(store, &s, ExpectedRevision::Any, evs(n * 2..n * 2 + 2)).await?;
        let head = store.head().await.ctx("head()")?;
        check!(
            head >= Some(o.last_position),
            "head() {head:?} is before the position {} just appended",
            o.last_position
        );
        last = Some(o.last_position);
    }
    // Bracket the log's end between two heads: on a store nobody else
    // writes to, that makes head() equal to the last event's position.
    let before = store.head().await.ctx("head()")?;
    let mut cursor = last;
    loop {
        let page = store
            .read_all(cursor, 1000)
            .await
            .ctx("read_all to the end")?;
        match page.last() {
            Some(e) => cursor = Some(e.position),
            None => break,
        }
    }
    let after = store.head().await.ctx("head()")?;
    check!(
        before <= cursor && cursor <= after,
        "the log ends at {cursor:?}, but head() said {before:?} before reading it and {after:?} after"
    );
    Ok(())
}
