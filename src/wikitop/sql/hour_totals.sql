-- One hour's page totals and its bad lines, in a single pass over clean_lines.
--
-- Input  clean_lines(domain_code, page_title, views, problem) (clean_lines.sql).
-- Output (domain_code, page_title, problem, views, lines): one row per page from the
--        good lines (problem NULL), and one row per kind of bad line (domain_code and
--        page_title NULL, lines = how many).
SELECT domain_code, page_title, problem, CAST(SUM(views) AS BIGINT) AS views, COUNT(*) AS lines
FROM (
    SELECT
        CASE WHEN problem IS NULL THEN domain_code END AS domain_code,
        CASE WHEN problem IS NULL THEN page_title END AS page_title,
        problem,
        views
    FROM clean_lines
) AS keyed
GROUP BY domain_code, page_title, problem
