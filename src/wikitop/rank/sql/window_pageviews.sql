-- The hourly rows of the pages that can make a window's list: the input of page_totals.sql
-- for a window, so that only these pages are summed and ranked instead of every page.
--
-- Input  hourly_totals(domain_code, page_title, views): the page totals of ${hours} hours,
--        a page at most once per hour;
--        window_bounds(domain_code, min_total) (window_bounds.sql).
-- Params ${hours}: the most rows a page has (the hours, times the domain codes of a project
--        when codes are grouped); ${min_views}: the fewest views a listed page has.
-- Output (domain_code, page_title, views): every hourly row of each page that has a row
--        with at least min_total / ${hours} views, or, where its domain code has no bound,
--        at least ${min_views} / ${hours}.
--
-- Sound because a page whose total reaches min_total over at most ${hours} rows has a row
-- with at least min_total / ${hours} views; the pages ranked above any listed page pass
-- too, so ranks among these pages are ranks among all pages. The test is on min_total /
-- ${hours} rounded up, computed once per domain code: views * ${hours} could pass 2^63-1
-- where the views themselves fit. div() is integer division (Spark's; a macro in DuckDB).
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
    WHERE h.views >= COALESCE(
        b.min_views,
        div(${min_views}, ${hours}) + CASE WHEN ${min_views} % ${hours} = 0 THEN 0 ELSE 1 END
    )
) AS c
  ON c.domain_code = t.domain_code
 AND c.page_title = t.page_title
