-- How many lines of an hour had each problem (NULL: the good lines).
--
-- Input  hour_lines (clean_lines.sql, materialized).
SELECT problem, COUNT(*) AS lines
FROM hour_lines
GROUP BY problem
