-- How many lines of an hour had each problem (NULL: the good lines).
--
-- Input  hour_lines (clean_lines.sql, materialized).
-- The few bad lines are grouped, and the good ones are what they leave of all the lines:
-- counting the rows of a table reads none of them, where grouping every row by its
-- problem read them all (DuckDB: 0.01 s instead of 0.06 s for 6M lines).
WITH bad_lines AS (
    SELECT problem, COUNT(*) AS lines
    FROM hour_lines
    WHERE problem IS NOT NULL
    GROUP BY problem
)
SELECT problem, lines
FROM bad_lines
UNION ALL
SELECT NULL AS problem, (SELECT COUNT(*) FROM hour_lines) - (SELECT COALESCE(SUM(lines), 0) FROM bad_lines) AS lines
