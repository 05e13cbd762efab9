-- Claims fenced by a token and searched for in the log
-- (docs/adr/0012-idempotency-fenced-by-the-log.md). Each claim of a key gets
-- a fresh `claim_token`, which is also the correlation id of every event its
-- request appends; completing or releasing a claim only acts while the row
-- holds that token. `claim_commit`/`claim_prepare` are the event store's head
-- when the key was first claimed (NULL: the log was empty, or the row predates
-- this migration): a request taking the key over searches the log after it
-- for what the earlier requests committed. `released` marks a claim given up
-- after an error that tells the client to retry: the next request with the
-- key takes it over at once, after the same search. Rows written before this
-- migration have no token.
ALTER TABLE idempotency_keys ADD COLUMN claim_token TEXT;
ALTER TABLE idempotency_keys ADD COLUMN claim_commit INTEGER;
ALTER TABLE idempotency_keys ADD COLUMN claim_prepare INTEGER;
ALTER TABLE idempotency_keys ADD COLUMN released INTEGER NOT NULL DEFAULT 0;
