-- What an hour's lines held: how many of each problem (NULL: good lines), and how many
-- distinct (domain_code, page_title) pairs among them.
--
-- Input  hour_lines (clean_lines.sql, materialized).
-- A pair appears at most once per hourly file, so its lines are already its totals; when
-- distinct_pairs < lines for the good lines, the engine sums them (page_totals.sql).
-- xxhash64() is a 64-bit hash (DuckDB's hash() under Spark's name): a collision can only
-- lower distinct_pairs, which leads to the summing path, never to a wrong answer.
SELECT problem, COUNT(*) AS lines, COUNT(DISTINCT xxhash64(domain_code, page_title)) AS distinct_pairs
FROM hour_lines
GROUP BY problem
