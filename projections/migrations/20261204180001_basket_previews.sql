-- Columns stored ready to show (docs/adr/0016-data-path.md): a page of the
-- marketplace is rows copied into a response, not JSON parsed and rendered
-- again for every row of every page.
--
-- strategy_previews: the JSON array of strategy previews that anyone may
-- see (strategy_id, name, underlying, product, entry_time, exit_time,
-- trading_days, leg_count; no legs), exactly as the template details render
-- it, written by the baskets projector whenever the strategies change.
-- NULL on rows projected before this migration; the query API then renders
-- the previews from `strategies` (`basketry projections rebuild baskets`
-- fills the column).
ALTER TABLE rm_baskets ADD COLUMN strategy_previews TEXT;

-- Browsing by popularity reads the first page straight from the index, in
-- the page's own order (`subscriber_count` descending, `basket_id` breaking
-- ties), without sorting the matching templates first. It replaces the
-- index of the same three leading columns.
DROP INDEX rm_baskets_browse;
CREATE INDEX rm_baskets_popular ON rm_baskets (is_template, visibility, subscriber_count DESC, basket_id);
