-- The hourly rows of the pages that can make a window's list: the input of page_totals.sql
-- for a window, so that only these pages are summed and ranked instead of every page.
--
-- Input  hourly_totals(domain_code, page_title, views): the page totals of ${hours} hours,
--        a page at most once per hour;
--        window_bounds(domain_code, min_total) (window_bounds.sql).
-- Output (domain_code, page_title, views): every hourly row of each page that has an hour
--        with at least min_total / ${hours} views, or whose domain code has no bound.
--
-- Sound because a page whose total reaches min_total over ${hours} hours has an hour with
-- at least min_total / ${hours} views; the pages ranked above any listed page pass too, so
-- ranks among these pages are ranks among all pages. The test is on min_total / ${hours}
-- rounded up, computed once per domain code: views * ${hours} could pass 2^63-1 where the
-- views themselves fit. div() is integer division (Spark's; a macro in DuckDB).
-- The hint (a comment to DuckDB) has Spark send these few pages to every task instead of
-- shuffling every hourly row by page, the cost this query exists to avoid.
SELECT /*+ BROADCAST(c) */ t.domain_code, t.page_title, t.views
FROM hourly_totals AS t
JOIN (
    SELECT DISTINCT h.domain_code, h.page_title
    FROM hourly_totals AS h
    LEFT JOIN (
        SELECT
            domain_code,
            div(min_total, ${hours}) + CASE WHEN min_total % ${hours} = 0 THEN 0 ELSE 1 END AS min_views
        FROM window_bounds
    ) AS b
      ON b.domain_code = h.domain_code
    WHERE b.min_views IS NULL OR h.views >= b.min_views
) AS c
  ON c.domain_code = t.domain_code
 AND c.page_title = t.page_title
