-- A first guess at a window's lists, to bound what the rest must sum: per domain code, the
-- pages of the ${top} x ${hours} hourly rows with the most views (ties included), each with
-- the sum of those rows alone, which is at most the page's total.
--
-- Input  hourly_totals(domain_code, page_title, views): the page totals of the window's
--        hours, a page in at most ${hours} rows (once per hour, or once per domain code of
--        its project and hour when codes are grouped).
-- Output (domain_code, page_title, views), one row per page.
--
-- The cutoff comes from counting rows per view count, which reads no title.
WITH row_counts AS (
    SELECT domain_code, views, COUNT(*) AS hour_rows
    FROM hourly_totals
    GROUP BY domain_code, views
),
rows_above AS (
    SELECT
        domain_code,
        views,
        SUM(hour_rows) OVER (PARTITION BY domain_code ORDER BY views DESC
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - hour_rows AS rows_above
    FROM row_counts
),
seed_cutoff AS (
    SELECT domain_code, MIN(views) AS min_views
    FROM rows_above
    WHERE rows_above < ${top} * ${hours}
    GROUP BY domain_code
)
SELECT t.domain_code, t.page_title, CAST(SUM(t.views) AS BIGINT) AS views
FROM hourly_totals AS t
JOIN seed_cutoff AS c
  ON c.domain_code = t.domain_code
 AND t.views >= c.min_views
GROUP BY t.domain_code, t.page_title
