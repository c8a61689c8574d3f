-- The most viewed pages of each domain code.
--
-- Input  allowed_pages(domain_code, page_title, views), one row per page (allowed_pages.sql).
-- Params ${top}: how many places; ${ties}: 'rank' (tied pages share a place, so a
--        domain may list more than ${top} rows), 'dense' (${top} distinct view counts)
--        or 'row' (exactly ${top} rows, ties broken by title).
-- Output (domain_code, page_title, views, rank) sorted by domain code, views descending,
--        title.
--
-- Ranking every page is the expensive part; first find, per domain, the smallest view
-- count that can still make the list, from the (far fewer) distinct view counts.
WITH view_counts AS (
    SELECT domain_code, views, COUNT(*) AS pages
    FROM allowed_pages
    GROUP BY domain_code, views
),
view_counts_above AS (
    SELECT
        domain_code,
        views,
        SUM(pages) OVER (PARTITION BY domain_code ORDER BY views DESC
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - pages AS pages_above,
        ROW_NUMBER() OVER (PARTITION BY domain_code ORDER BY views DESC) - 1 AS counts_above
    FROM view_counts
),
cutoff AS (
    SELECT domain_code, MIN(views) AS min_views
    FROM view_counts_above
    WHERE CASE WHEN '${ties}' = 'dense' THEN counts_above ELSE pages_above END < ${top}
    GROUP BY domain_code
),
ranked AS (
    SELECT
        a.domain_code,
        a.page_title,
        a.views,
        RANK() OVER (PARTITION BY a.domain_code ORDER BY a.views DESC) AS rank_with_ties,
        DENSE_RANK() OVER (PARTITION BY a.domain_code ORDER BY a.views DESC) AS dense_rank,
        ROW_NUMBER() OVER (PARTITION BY a.domain_code ORDER BY a.views DESC, a.page_title) AS row_number
    FROM allowed_pages AS a
    JOIN cutoff AS c
      ON c.domain_code = a.domain_code
     AND a.views >= c.min_views
)
SELECT domain_code, page_title, views, rank
FROM (
    SELECT
        domain_code,
        page_title,
        views,
        CASE '${ties}'
            WHEN 'rank' THEN rank_with_ties
            WHEN 'dense' THEN dense_rank
            ELSE row_number
        END AS rank
    FROM ranked
) AS chosen
WHERE rank <= ${top}
ORDER BY domain_code, views DESC, page_title
