//! Cases under concurrency: racing appenders, many writers at once, and
//! readers tailing the log while commits land late.

use super::*;

/// 50 writers race for one stream: each revision is won by exactly one, the
/// others are told the stream's real revision, and the stream ends whole.
pub async fn concurrent_appenders_get_one_winner_per_revision(fx: Fixture) -> CaseResult {
    const WRITERS: usize = 50;
    let s = stream(&fx.ns, "contended")?;

    struct Win {
        id: Uuid,
        expected: ExpectedRevision,
        revision: Revision,
        conflicts: usize,
    }

    // Round 1: all start with NoStream at once and retry with the revision
    // the conflict reports until each has appended its event.
    let barrier = Arc::new(Barrier::new(WRITERS));
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
            let e = ev(w as u64);
            let id = e.event_id;
            let mut expected = ExpectedRevision::NoStream;
            let mut conflicts = 0;
            barrier.wait().await;
            loop {
                match store.append(&s, expected, vec![e.clone()]).await {
                    Ok(o) => {
                        return Ok(Win {
                            id,
                            expected,
                            revision: o.last_revision,
                            conflicts,
                        })
                    }
                    Err(AppendError::Conflict {
                        expected: echoed,
                        actual,
                    }) => {
                        check_eq!(echoed, expected, "writer {w}: Conflict.expected");
                        // The stream only grows, so the real revision is
                        // past the one this writer last saw.
                        let grown = match (expected, actual) {
                            (ExpectedRevision::NoStream, Some(_)) => true,
                            (ExpectedRevision::Exact(seen), Some(a)) => a > seen,
                            _ => false,
                        };
                        check!(
                            grown,
                            "writer {w}: expecting {expected}, got Conflict with actual {actual:?}"
                        );
                        conflicts += 1;
                        check!(
                            conflicts <= 10 * WRITERS,
                            "writer {w}: {conflicts} conflicts without ever winning"
                        );
                        expected = ExpectedRevision::Exact(actual.unwrap_or(Revision::START));
                    }
                    Err(e) => return Err(format!("writer {w}: append expecting {expected}: {e}")),
                }
            }
        }));
    }
    let wins = join_all(handles).await?;
    let mut by_revision: BTreeMap<Revision, &Win> = BTreeMap::new();
    for win in &wins {
        let want = match win.expected {
            ExpectedRevision::NoStream => Revision(0),
            ExpectedRevision::Exact(r) => r.next(),
            ExpectedRevision::Any => return Err("a writer used Any".into()),
        };
        check_eq!(
            win.revision,
            want,
            "revision won expecting {}",
            win.expected
        );
        if let Some(other) = by_revision.insert(win.revision, win) {
            return Err(format!(
                "revision {} was won twice: by {} and {}",
                win.revision, other.id, win.id
            ));
        }
    }
    check_eq!(by_revision.len(), WRITERS, "revisions won");
    let no_stream_wins = wins
        .iter()
        .filter(|w| w.expected == ExpectedRevision::NoStream)
        .count();
    check_eq!(no_stream_wins, 1, "writers that won with NoStream");
    let conflicts: usize = wins.iter().map(|w| w.conflicts).sum();
    check!(
        conflicts >= WRITERS - 1,
        "only {conflicts} conflicts among {WRITERS} writers that all started with NoStream"
    );
    let read = read_stream(&*fx.store, &s, Revision::START).await?;
    check_eq!(read.len(), WRITERS, "events in the contended stream");
    for (rev, win) in &by_revision {
        check_eq!(
            read[rev.0 as usize].event_id,
            win.id,
            "event at revision {rev}"
        );
    }
    check_chain(&read)?;

    // Round 2: all expect the current last revision at once; exactly one
    // wins and every other is told the winner's revision.
    let last = Revision(WRITERS as u64 - 1);
    let barrier = Arc::new(Barrier::new(WRITERS));
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
            let e = ev(1000 + w as u64);
            let id = e.event_id;
            barrier.wait().await;
            match store
                .append(&s, ExpectedRevision::Exact(last), vec![e])
                .await
            {
                Ok(o) => Ok(Some((id, o.last_revision))),
                Err(AppendError::Conflict { expected, actual }) => {
                    check_eq!(
                        expected,
                        ExpectedRevision::Exact(last),
                        "writer {w}: Conflict.expected"
                    );
                    check_eq!(actual, Some(last.next()), "writer {w}: Conflict.actual");
                    Ok(None)
                }
                Err(e) => Err(format!("writer {w}: {e}")),
            }
        }));
    }
    let winners: Vec<(Uuid, Revision)> = join_all(handles).await?.into_iter().flatten().collect();
    check_eq!(
        winners.len(),
        1,
        "winners among {WRITERS} writers expecting {last}"
    );
    check_eq!(winners[0].1, last.next(), "the winner's revision");
    let read = read_stream(&*fx.store, &s, Revision::START).await?;
    check_eq!(read.len(), WRITERS + 1, "events after round 2");
    check_eq!(
        read[WRITERS].event_id,
        winners[0].0,
        "the last event is the winner's"
    );
    check_chain(&read)?;
    Ok(())
}

/// 10 000 appends by 100 concurrent writers to 100 streams: `$all` then
/// holds every event once, in strictly increasing position order, each
/// stream whole and chained.
pub async fn ten_thousand_concurrent_appends_across_100_streams(fx: Fixture) -> CaseResult {
    const STREAMS: u64 = 100;
    const PER_STREAM: u64 = 100;
    let start = start_of(&*fx.store).await?;
    let mut handles = Vec::new();
    for k in 0..STREAMS {
        let store = Arc::clone(&fx.store);
        let s = stream(&fx.ns, &format!("bulk-{k}"))?;
        handles.push(tokio::spawn(async move {
            let mut written = Vec::with_capacity(PER_STREAM as usize);
            let mut expected = ExpectedRevision::NoStream;
            let mut last_position: Option<Position> = None;
            for i in 0..PER_STREAM {
                let e = ev(k * 1000 + i);
                let id = e.event_id;
                let o = append(&*store, &s, expected, vec![e]).await?;
                check_eq!(o.last_revision, Revision(i), "{s}: revision of append {i}");
                check!(
                    last_position.is_none_or(|p| o.last_position > p),
                    "{s}: append {i} got position {}, not after {:?}",
                    o.last_position,
                    last_position
                );
                last_position = Some(o.last_position);
                expected = ExpectedRevision::Exact(o.last_revision);
                written.push((id, o.last_position));
            }
            Ok((s, written))
        }));
    }
    let written = join_all(handles).await?;
    let mut position_of: HashMap<Uuid, Position> = HashMap::new();
    for (_, w) in &written {
        position_of.extend(w.iter().copied());
    }
    check_eq!(
        position_of.len(),
        (STREAMS * PER_STREAM) as usize,
        "distinct events written"
    );

    let all = read_own(&*fx.store, &fx.ns, start, 1000).await?;
    check_eq!(
        all.len(),
        (STREAMS * PER_STREAM) as usize,
        "own events in $all"
    );
    check_positions_increase(&all, "read_all")?;
    let mut seen = HashSet::with_capacity(all.len());
    let mut next_revision: HashMap<&StreamId, u64> = HashMap::new();
    for e in &all {
        check!(
            seen.insert(e.event_id),
            "event {} appears twice in $all",
            e.event_id
        );
        check_eq!(
            position_of.get(&e.event_id).copied(),
            Some(e.position),
            "position of {} rev {} against its append's outcome",
            e.stream_id,
            e.revision
        );
        let next = next_revision.entry(&e.stream_id).or_insert(0);
        check_eq!(
            e.revision,
            Revision(*next),
            "{}: revision order in $all",
            e.stream_id
        );
        *next += 1;
    }
    check_eq!(next_revision.len(), STREAMS as usize, "streams in $all");
    for (s, w) in &written {
        let read = read_stream(&*fx.store, s, Revision::START).await?;
        check_eq!(read.len(), PER_STREAM as usize, "{s}: events");
        check!(
            read.iter()
                .map(|e| e.event_id)
                .eq(w.iter().map(|(id, _)| *id)),
            "{s}: events differ from those appended"
        );
        check_chain(&read)?;
    }
    let head = fx.store.head().await.ctx("head()")?;
    check!(
        head >= all.last().map(|e| e.position),
        "head() {head:?} is before the last appended event {:?}",
        all.last().map(|e| e.position)
    );
    Ok(())
}

/// Readers tailing `$all` — a pager and a subscription — while many writers
/// append through two store handles see positions strictly increase and, in
/// the end, exactly the sequence a final full read returns: no event that
/// committed late at an earlier position is skipped.
pub async fn tailing_readers_never_skip_late_commits(fx: Fixture) -> CaseResult {
    const WRITERS: u64 = 16;
    const APPENDS: u64 = 30;
    let start = start_of(&*fx.store).await?;
    let total: usize = (0..WRITERS)
        .map(|_| (0..APPENDS).map(|i| (i % 3 + 1) as usize).sum::<usize>())
        .sum();

    let mut sub = fx
        .store
        .subscribe_all(start)
        .await
        .ctx("subscribe_all(start)")?;
    let writers_done = Arc::new(AtomicBool::new(false));

    // The pager: reads pages after the last position it saw, checking every
    // page against the one before, until the writers are done and a page
    // read after that comes back empty.
    let pager = {
        let store = Arc::clone(&fx.store);
        let ns = fx.ns.clone();
        let done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut cursor = start;
            let mut own = Vec::new();
            let mut pages = 0usize;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.read_all(cursor, 37).await.ctx("tailing read_all")?;
                pages += 1;
                if page.is_empty() {
                    if finished {
                        return Ok((own, pages));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for e in page {
                    if let Some(c) = cursor {
                        check!(
                            e.position > c,
                            "tailing reader: position {} after {c}",
                            e.position
                        );
                    }
                    cursor = Some(e.position);
                    if is_own(&ns, &e) {
                        own.push(e);
                    }
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let subscriber = {
        let ns = fx.ns.clone();
        tokio::spawn(async move {
            receive_own(&mut sub, &ns, total)
                .await
                .map(|got| (got, sub))
        })
    };

    let barrier = Arc::new(Barrier::new(WRITERS as usize));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            Arc::clone(&fx.store)
        } else {
            Arc::clone(&fx.peer)
        };
        let s = stream(&fx.ns, &format!("tail-{}", w % 8))?;
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            for i in 0..APPENDS {
                let n = w * 1000 + i * 10;
                let size = i % 3 + 1;
                append(&*store, &s, ExpectedRevision::Any, evs(n..n + size)).await?;
            }
            Ok(())
        }));
    }
    let writers = join_all(handles).await;
    writers_done.store(true, Ordering::SeqCst);
    let (paged, pages) = pager.await.ctx("tailing reader task")??;
    writers?;
    let (subscribed, mut sub) = subscriber.await.ctx("subscriber task")??;

    let all = read_own(&*fx.store, &fx.ns, start, 1000).await?;
    check_eq!(all.len(), total, "own events in the final read");
    let unique: HashSet<Uuid> = all.iter().map(|e| e.event_id).collect();
    check_eq!(unique.len(), total, "distinct own events in the final read");
    check!(pages > 1, "the tailing reader read only {pages} page(s)");
    check_same_sequence(&paged, &all, "tailing read_all vs final read")?;
    check_same_sequence(&subscribed, &all, "subscription vs final read")?;
    if let Some(extra) = next_own(&mut sub, &fx.ns, QUIET_PERIOD).await? {
        return Err(format!(
            "the subscription delivered an extra event: {} rev {} at {}",
            extra.stream_id, extra.revision, extra.position
        ));
    }
    for k in 0..8 {
        let s = stream(&fx.ns, &format!("tail-{k}"))?;
        check_chain(&read_stream(&*fx.store, &s, Revision::START).await?)?;
    }
    Ok(())
}
