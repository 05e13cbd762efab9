-- One group-commit batch in one call (store/src/postgres.rs,
-- docs/adr/0016-data-path.md). The writer checks expected revisions and
-- seals its batch against the stream heads it *assumes*, and sends the
-- planned rows, in plan order, together with those assumptions. Under the
-- store's write lock (the transaction-scoped advisory lock `write_lock`, the
-- same key as every other writer's) this function checks them against the
-- committed log: the head of each stream of the batch (its highest revision
-- and that event's hash; revision -1 and hash '' for a stream without
-- events) must be the one assumed. The heads are the plan's only input
-- besides the highest position, which the function supplies itself: the
-- n-th row gets position `last_position + n`, right after the highest
-- committed position (gap-free). So when the heads hold, the rows are the
-- ones the writer would have planned under the lock; they are inserted and
-- `applied` is true, with `last_position` the highest position before them.
-- When any head does not hold, nothing is written, `applied` is false and
-- the actual heads of the batch's streams (those with events) come back, for
-- the writer to plan again.
--
-- Called in autocommit, it is one round trip and one transaction per batch;
-- the lock is released only once the transaction is visible, so positions
-- still become visible strictly in order. VOLATILE (the default): each
-- statement takes a fresh snapshot, so after the lock is granted the checks
-- see every batch committed before.
CREATE FUNCTION basketry_append_batch(
    write_lock BIGINT,
    head_streams TEXT[],
    head_revisions BIGINT[],
    head_hashes TEXT[],
    new_stream_ids TEXT[],
    new_revisions BIGINT[],
    new_event_ids UUID[],
    new_event_types TEXT[],
    new_schema_versions INTEGER[],
    new_data TEXT[],
    new_metadata TEXT[],
    new_prev_hashes TEXT[],
    new_hashes TEXT[],
    new_recorded_at TIMESTAMPTZ,
    OUT applied BOOLEAN,
    OUT last_position BIGINT,
    OUT actual_streams TEXT[],
    OUT actual_revisions BIGINT[],
    OUT actual_hashes TEXT[]
)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(write_lock);
    SELECT COALESCE(MAX(e.position), 0) INTO last_position FROM events e;
    IF NOT EXISTS (
        SELECT 1
        FROM unnest(head_streams, head_revisions, head_hashes) AS a(s, r, h)
        LEFT JOIN LATERAL (
            SELECT e.revision, e.hash FROM events e
            WHERE e.stream_id = a.s ORDER BY e.revision DESC LIMIT 1
        ) x ON true
        WHERE COALESCE(x.revision, -1) <> a.r OR COALESCE(x.hash, '') <> a.h
    ) THEN
        INSERT INTO events (position, stream_id, revision, event_id, event_type,
                            schema_version, data, metadata, prev_hash, hash, recorded_at)
        SELECT last_position + u.n, u.s, u.r, u.i, u.t, u.v, u.d::json, u.m::json, u.ph, u.h,
               new_recorded_at
        FROM unnest(new_stream_ids, new_revisions, new_event_ids, new_event_types,
                    new_schema_versions, new_data, new_metadata, new_prev_hashes, new_hashes)
             WITH ORDINALITY AS u(s, r, i, t, v, d, m, ph, h, n);
        applied := true;
        RETURN;
    END IF;
    applied := false;
    SELECT array_agg(a.s), array_agg(x.revision), array_agg(x.hash)
    INTO actual_streams, actual_revisions, actual_hashes
    FROM unnest(head_streams) AS a(s)
    JOIN LATERAL (
        SELECT e.revision, e.hash FROM events e
        WHERE e.stream_id = a.s ORDER BY e.revision DESC LIMIT 1
    ) x ON true;
END
$$;
