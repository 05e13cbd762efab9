//! Cases on appends: what a write stores, expected revisions, refused
//! appends and the hash chain.

use super::*;

/// Every field the writer gave comes back as given; the store's stamps are
/// sane and identical whichever way the event is read.
pub async fn append_and_read_round_trip(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    // Every character a stream name may hold.
    let s = stream(&fx.ns, "basket-1_user:alice@example.com.v2")?;
    let first = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "BasketCreated".into(),
        schema_version: 1,
        data: json!({
            "name": "Δ-neutral iron condor ✓ — 日本",
            "quote": "it's \"quoted\" \\ back\nslash\ttab",
            "legs": [
                {"strike": 4500, "right": "put", "qty": -1},
                {"strike": 4600, "right": "call", "qty": 1}
            ],
            "weight": 0.25,
            "beyond_f64": 9_007_199_254_740_993u64,
            "negative": -42,
            "flags": {"zeta": true, "alpha": false, "note": null},
            "empty_object": {},
            "empty_array": []
        }),
        metadata: NewMetadata {
            actor: Actor {
                kind: "user".into(),
                id: "0190c0de-0000-7000-8000-00000000a11c".into(),
            },
            correlation_id: Uuid::new_v4(),
            causation_id: Some(Uuid::new_v4()),
            idempotency_key: Some("idem-Key_1:ü".into()),
        },
    };
    let second = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "BasketRebalanced".into(),
        schema_version: 3,
        data: json!(["a", 1, null]),
        metadata: NewMetadata {
            actor: Actor {
                kind: "partner".into(),
                id: "key-42".into(),
            },
            correlation_id: first.metadata.correlation_id,
            causation_id: None,
            idempotency_key: None,
        },
    };
    let third = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "BasketArchived2".into(),
        schema_version: 2,
        data: json!("just a string"),
        metadata: NewMetadata {
            actor: Actor {
                kind: "admin".into(),
                id: "root".into(),
            },
            correlation_id: Uuid::new_v4(),
            causation_id: Some(second.event_id),
            idempotency_key: Some(String::new()),
        },
    };
    let written = vec![first.clone(), second.clone(), third.clone()];

    let before = Utc::now();
    let o1 = append(store, &s, ExpectedRevision::NoStream, vec![first, second]).await?;
    let o2 = append(store, &s, ExpectedRevision::Exact(Revision(1)), vec![third]).await?;
    let after = Utc::now();
    check_eq!(
        o1.last_revision,
        Revision(1),
        "first append's last_revision"
    );
    check_eq!(
        o2.last_revision,
        Revision(2),
        "second append's last_revision"
    );
    check!(
        o1.last_position < o2.last_position,
        "append outcomes' positions must grow: {} then {}",
        o1.last_position,
        o2.last_position
    );
    if let Some(start) = start {
        check!(
            o1.last_position > start,
            "a new event's position {} is not after the earlier head {start}",
            o1.last_position
        );
    }

    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 3, "events read back");
    for (i, (got, want)) in read.iter().zip(&written).enumerate() {
        let what = format!("event {i}");
        check_eq!(got.event_id, want.event_id, "{what}: event_id");
        check_eq!(got.stream_id, s, "{what}: stream_id");
        check_eq!(got.revision, Revision(i as u64), "{what}: revision");
        check_eq!(got.event_type, want.event_type, "{what}: event_type");
        check_eq!(
            got.schema_version,
            want.schema_version,
            "{what}: schema_version"
        );
        check_eq!(got.data, want.data, "{what}: data");
        check_eq!(got.metadata.actor, want.metadata.actor, "{what}: actor");
        check_eq!(
            got.metadata.correlation_id,
            want.metadata.correlation_id,
            "{what}: correlation_id"
        );
        check_eq!(
            got.metadata.causation_id,
            want.metadata.causation_id,
            "{what}: causation_id"
        );
        check_eq!(
            got.metadata.idempotency_key,
            want.metadata.idempotency_key,
            "{what}: idempotency_key"
        );
        let at = got.metadata.recorded_at;
        check_eq!(
            at.timestamp_subsec_nanos() % 1_000,
            0,
            "{what}: recorded_at {at} must be truncated to microseconds"
        );
        check!(
            at >= before - chrono::Duration::seconds(60)
                && at <= after + chrono::Duration::seconds(60),
            "{what}: recorded_at {at} is far from the time of the append ({before} .. {after})"
        );
    }
    check_eq!(
        read[1].position,
        o1.last_position,
        "position of the first append's last event"
    );
    check_eq!(
        read[2].position,
        o2.last_position,
        "position of the second append's last event"
    );
    check_positions_increase(&read, "read_stream")?;
    check_chain(&read)?;

    // The same events, field for field, whichever way they are read.
    let again = read_stream(store, &s, Revision::START).await?;
    check!(again == read, "a second read_stream differs from the first");
    let all = read_own(store, &fx.ns, start, 100).await?;
    check!(
        all == read,
        "read_all's copy of the events differs from read_stream's: {:?} vs {:?}",
        all.iter()
            .map(|e| (e.revision, e.position, e.metadata.recorded_at))
            .collect::<Vec<_>>(),
        read.iter()
            .map(|e| (e.revision, e.position, e.metadata.recorded_at))
            .collect::<Vec<_>>()
    );
    let mut sub = store
        .subscribe_all(start)
        .await
        .ctx("subscribe_all(start)")?;
    let live = receive_own(&mut sub, &fx.ns, 3).await?;
    check!(
        live == read,
        "subscribe_all's copy of the events differs from read_stream's"
    );
    Ok(())
}

/// One append of several events gets consecutive revisions, all or nothing,
/// and readers never see part of it.
pub async fn multi_event_append_is_atomic_and_consecutive(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let s = stream(&fx.ns, "multi")?;
    let o = append(store, &s, ExpectedRevision::NoStream, evs(0..5)).await?;
    check_eq!(
        o.last_revision,
        Revision(4),
        "last_revision of a 5-event append"
    );
    let o = append(store, &s, ExpectedRevision::Exact(Revision(4)), evs(5..8)).await?;
    check_eq!(
        o.last_revision,
        Revision(7),
        "last_revision of the next 3-event append"
    );
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 8, "events in the stream");
    check_positions_increase(&read, "read_stream")?;
    check_eq!(
        read[7].position,
        o.last_position,
        "last_position of the 3-event append"
    );
    for (i, e) in read.iter().enumerate() {
        check_eq!(e.data, json!({ "n": i }), "data of revision {i}");
    }

    // A conflicting multi-event append writes none of its events.
    let rejected = evs(100..103);
    let rejected_ids: HashSet<Uuid> = rejected.iter().map(|e| e.event_id).collect();
    expect_conflict(
        store
            .append(&s, ExpectedRevision::Exact(Revision(2)), rejected)
            .await,
        ExpectedRevision::Exact(Revision(2)),
        Some(Revision(7)),
        "stale multi-event append",
    )?;
    // So does one with a single invalid event among valid ones.
    let mut mixed = evs(200..203);
    mixed[1].event_type = "Not Valid".into();
    let mixed_ids: HashSet<Uuid> = mixed.iter().map(|e| e.event_id).collect();
    expect_invalid(
        store
            .append(&s, ExpectedRevision::Exact(Revision(7)), mixed)
            .await,
        "append with one invalid event among three",
    )?;
    let after = read_stream(store, &s, Revision::START).await?;
    check!(after == read, "a refused append changed the stream");
    let all = read_own(store, &fx.ns, start, 1000).await?;
    check!(
        all.iter()
            .all(|e| !rejected_ids.contains(&e.event_id) && !mixed_ids.contains(&e.event_id)),
        "an event of a refused append is in $all"
    );
    check_eq!(all.len(), 8, "own events in $all");

    // Readers racing a writer of 4-event appends only ever see whole appends.
    let racy = stream(&fx.ns, "multi-racy")?;
    let writer = {
        let store = Arc::clone(&fx.store);
        let racy = racy.clone();
        tokio::spawn(async move {
            for k in 0..30u64 {
                append(&*store, &racy, ExpectedRevision::Any, evs(k * 4..k * 4 + 4)).await?;
            }
            Ok::<(), String>(())
        })
    };
    let mut observations = 0usize;
    let (mut cursor, mut in_all) = (start, 0usize);
    loop {
        let done = writer.is_finished();
        let seen = read_stream(store, &racy, Revision::START).await?;
        observations += 1;
        check!(
            seen.len() % 4 == 0,
            "read_stream saw {} events of a stream written only in appends of 4",
            seen.len()
        );
        for (i, e) in seen.iter().enumerate() {
            check_eq!(e.revision, Revision(i as u64), "revision in racing read");
        }
        // The same through $all: an append's events all get positions after
        // everything already visible, so paging to the end sees all or none.
        let (new, next) = read_own_from(store, &fx.ns, cursor, 1000).await?;
        cursor = next;
        in_all += new.iter().filter(|e| e.stream_id == racy).count();
        check!(
            in_all % 4 == 0,
            "read_all saw {in_all} events of a stream written only in appends of 4"
        );
        if done {
            check_eq!(seen.len(), 120, "events after the writer finished");
            check_eq!(in_all, 120, "events in $all after the writer finished");
            break;
        }
        tokio::task::yield_now().await;
    }
    writer.await.ctx("writer task")??;
    check!(observations > 0, "the racing reader never read");
    let final_read = read_stream(store, &racy, Revision::START).await?;
    check_chain(&final_read)?;
    Ok(())
}

/// `NoStream` creates a stream and refuses an existing one.
pub async fn expected_no_stream(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "reservation")?;
    let o = append(store, &s, ExpectedRevision::NoStream, vec![ev(0)]).await?;
    check_eq!(
        o.last_revision,
        Revision(0),
        "first revision of a new stream"
    );
    expect_conflict(
        store
            .append(&s, ExpectedRevision::NoStream, vec![ev(1)])
            .await,
        ExpectedRevision::NoStream,
        Some(Revision(0)),
        "NoStream on a stream with one event",
    )?;
    append(store, &s, ExpectedRevision::Exact(Revision(0)), evs(1..3)).await?;
    expect_conflict(
        store
            .append(&s, ExpectedRevision::NoStream, evs(3..5))
            .await,
        ExpectedRevision::NoStream,
        Some(Revision(2)),
        "NoStream on a stream with three events",
    )?;
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 3, "events after the refused appends");
    // Streams are independent: another name is still free.
    let other = stream(&fx.ns, "reservation-2")?;
    let o = append(store, &other, ExpectedRevision::NoStream, vec![ev(0)]).await?;
    check_eq!(
        o.last_revision,
        Revision(0),
        "first revision of a second new stream"
    );
    Ok(())
}

/// `Exact` admits only the stream's last revision and reports the real one.
pub async fn expected_exact(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "exact")?;
    expect_conflict(
        store
            .append(&s, ExpectedRevision::Exact(Revision(0)), vec![ev(0)])
            .await,
        ExpectedRevision::Exact(Revision(0)),
        None,
        "Exact(0) on a missing stream",
    )?;
    check!(
        read_stream(store, &s, Revision::START).await?.is_empty(),
        "a refused Exact append created the stream"
    );
    append(store, &s, ExpectedRevision::NoStream, evs(0..2)).await?;
    let o = append(store, &s, ExpectedRevision::Exact(Revision(1)), vec![ev(2)]).await?;
    check_eq!(o.last_revision, Revision(2), "revision after Exact(1)");
    for stale in [0, 1, 3, 17] {
        expect_conflict(
            store
                .append(&s, ExpectedRevision::Exact(Revision(stale)), vec![ev(99)])
                .await,
            ExpectedRevision::Exact(Revision(stale)),
            Some(Revision(2)),
            &format!("Exact({stale}) on a stream at revision 2"),
        )?;
    }
    let o = append(store, &s, ExpectedRevision::Exact(Revision(2)), vec![ev(3)]).await?;
    check_eq!(o.last_revision, Revision(3), "revision after Exact(2)");
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 4, "events after the refused appends");
    for (i, e) in read.iter().enumerate() {
        check_eq!(e.data, json!({ "n": i }), "data of revision {i}");
    }
    check_chain(&read)?;
    Ok(())
}

/// `Any` appends whatever the stream holds, even under contention.
pub async fn expected_any_always_succeeds(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "any")?;
    let o = append(store, &s, ExpectedRevision::Any, vec![ev(0)]).await?;
    check_eq!(o.last_revision, Revision(0), "Any on a missing stream");
    let o = append(store, &s, ExpectedRevision::Any, evs(1..3)).await?;
    check_eq!(o.last_revision, Revision(2), "Any on an existing stream");

    const WRITERS: u64 = 20;
    let barrier = Arc::new(Barrier::new(WRITERS as usize));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            Arc::clone(&fx.store)
        } else {
            Arc::clone(&fx.peer)
        };
        let s = s.clone();
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            let e = ev(100 + w);
            let id = e.event_id;
            barrier.wait().await;
            let o = append(&*store, &s, ExpectedRevision::Any, vec![e]).await?;
            Ok((o.last_revision, id))
        }));
    }
    let outcomes = join_all(handles).await?;
    let revisions: BTreeMap<Revision, Uuid> = outcomes.iter().copied().collect();
    check_eq!(
        revisions.len(),
        WRITERS as usize,
        "distinct revisions handed to {WRITERS} concurrent Any appends"
    );
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(
        read.len(),
        3 + WRITERS as usize,
        "events after the concurrent Any appends"
    );
    for (rev, id) in &revisions {
        check_eq!(
            read.get(rev.0 as usize).map(|e| e.event_id),
            Some(*id),
            "the event at the revision its append reported ({rev})"
        );
    }
    check_chain(&read)?;
    Ok(())
}

/// Empty appends and malformed events are refused with `Invalid`, and write
/// nothing.
pub async fn invalid_appends_are_refused(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    for bad in [
        "",
        "$bad",
        "has space",
        "x".repeat(201).as_str(),
        "ünïcode",
        "a/b",
    ] {
        check!(
            StreamId::parse(bad.to_string()).is_err(),
            "StreamId::parse accepted {bad:?}"
        );
    }
    let s = stream(&fx.ns, "invalid")?;
    for expected in [ExpectedRevision::Any, ExpectedRevision::NoStream] {
        expect_invalid(
            store.append(&s, expected, Vec::new()).await,
            &format!("empty append expecting {expected}"),
        )?;
    }
    let bad_types = [
        String::new(),
        "Has Space".into(),
        "$System".into(),
        "Dashed-Type".into(),
        "Dotted.Type".into(),
        "Ümlaut".into(),
        "A".repeat(101),
    ];
    for bad in &bad_types {
        let mut e = ev(0);
        e.event_type = bad.clone();
        expect_invalid(
            store.append(&s, ExpectedRevision::Any, vec![e]).await,
            &format!("event type {bad:?}"),
        )?;
    }
    let mut e = ev(0);
    e.schema_version = 0;
    expect_invalid(
        store.append(&s, ExpectedRevision::Any, vec![e]).await,
        "schema_version 0",
    )?;
    check!(
        read_stream(store, &s, Revision::START).await?.is_empty(),
        "a refused append created the stream"
    );
    // The longest valid type is accepted.
    let mut e = ev(0);
    e.event_type = "A".repeat(100);
    append(store, &s, ExpectedRevision::NoStream, vec![e]).await?;
    // An existing stream is not touched by refused appends either.
    expect_invalid(
        store
            .append(&s, ExpectedRevision::Exact(Revision(0)), Vec::new())
            .await,
        "empty append to an existing stream",
    )?;
    let mut bad_last = evs(1..3);
    bad_last[1].event_type = "Bad Type".into();
    expect_invalid(
        store
            .append(&s, ExpectedRevision::Exact(Revision(0)), bad_last)
            .await,
        "a valid event followed by an invalid one",
    )?;
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 1, "events after the refused appends");
    let all = read_own(store, &fx.ns, start, 1000).await?;
    check_eq!(all.len(), 1, "own events in $all after the refused appends");
    Ok(())
}

/// Every stream is an unbroken hash chain, identical whichever way it is
/// read, and the chain check really detects tampering.
pub async fn hash_chain_verifies(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let streams: Vec<StreamId> = (0..3)
        .map(|k| stream(&fx.ns, &format!("chain-{k}")))
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for (round, size) in [1u64, 3, 2, 1, 4].into_iter().enumerate() {
        for s in &streams {
            // Same content in every stream: every hash must still be unique.
            let batch: Vec<NewEvent> = (0..size)
                .map(|i| {
                    let mut e = ev(round as u64 * 10 + i);
                    e.metadata.correlation_id = Uuid::nil();
                    e
                })
                .collect();
            n += size;
            append(store, s, ExpectedRevision::Any, batch).await?;
        }
    }
    let mut hashes = HashSet::new();
    for s in &streams {
        let read = read_stream(store, s, Revision::START).await?;
        check_eq!(read.len() as u64, n / 3, "{s}: events");
        check_chain(&read)?;
        for e in &read {
            check!(
                hashes.insert(e.metadata.hash.clone()),
                "hash {} occurs twice",
                e.metadata.hash
            );
        }
        let tail = read_stream(store, s, Revision(4)).await?;
        check!(
            tail.as_slice() == &read[4..],
            "{s}: read from revision 4 differs"
        );
        // The check can fail: a changed byte breaks the chain.
        let mut tampered = read.clone();
        tampered[5].data = json!({ "n": 666 });
        check!(
            chain::verify_stream(&tampered).is_err(),
            "{s}: verify_stream accepted a tampered event"
        );
        let mut relinked = read.clone();
        relinked.swap(2, 3);
        check!(
            chain::verify_stream(&relinked).is_err(),
            "{s}: verify_stream accepted reordered events"
        );
    }
    let all = read_own(store, &fx.ns, start, 1000).await?;
    for s in &streams {
        let from_all: Vec<RecordedEvent> =
            all.iter().filter(|e| &e.stream_id == s).cloned().collect();
        check_chain(&from_all)?;
    }
    Ok(())
}
