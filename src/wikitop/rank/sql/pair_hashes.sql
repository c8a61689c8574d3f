-- A 64-bit hash of the (domain_code, page_title) pair of each good line of an hour.
--
-- Input  hour_lines (clean_lines.sql, materialized).
-- A pair appears at most once per hourly file, so its lines are already its totals;
-- engines check that these hashes are distinct and sum the lines (page_totals.sql) when
-- they are not. A collision can only lead to the summing, never to a wrong answer.
-- xxhash64() is Spark's 64-bit hash; the DuckDB engine maps it to its own hash().
SELECT xxhash64(domain_code, page_title) AS pair_hash
FROM hour_lines
WHERE problem IS NULL
