-- The most viewed pages of each domain code, blacklisted pages left out.
--
-- Input  page_totals(domain_code, page_title, views), one row per page;
--        blacklisted_pages(domain_code, page_title, views) (blacklisted_pages.sql).
-- Params ${top}: how many places; ${ties}: 'rank' (tied pages share a place, so a
--        domain may list more than ${top} rows), 'dense' (${top} distinct view counts)
--        or 'row' (exactly ${top} rows, ties broken by title); ${min_views}: the fewest
--        views a listed page has (0: every page).
-- Output (domain_code, page_title, views, rank) sorted by domain code, views descending,
--        title.
--
-- Ranking every page is the expensive part; first find, per domain, the smallest view
-- count that can still make the list, from the (far fewer) distinct view counts with the
-- blacklisted pages taken off them. Only pages above it are matched against the
-- blacklist and ranked. Dropping the view counts below ${min_views} there leaves out the
-- pages below it for no more than that.
WITH view_counts AS (
    SELECT domain_code, views, SUM(pages) AS pages
    FROM (
        SELECT domain_code, views, COUNT(*) AS pages
        FROM page_totals
        GROUP BY domain_code, views
        UNION ALL
        SELECT domain_code, views, -COUNT(*) AS pages
        FROM blacklisted_pages
        GROUP BY domain_code, views
    ) AS counted
    GROUP BY domain_code, views
    HAVING SUM(pages) > 0 AND views >= ${min_views}
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
candidates AS (
    -- EXCEPT, not an anti join: optimizers move an anti join below the cutoff join, and
    -- then match every page against the blacklist instead of the few above the cutoff.
    SELECT p.domain_code, p.page_title, p.views
    FROM page_totals AS p
    JOIN cutoff AS c
      ON c.domain_code = p.domain_code
     AND p.views >= c.min_views
    EXCEPT
    SELECT domain_code, page_title, views
    FROM blacklisted_pages
),
ranked AS (
    SELECT
        domain_code,
        page_title,
        views,
        RANK() OVER (PARTITION BY domain_code ORDER BY views DESC) AS rank_with_ties,
        DENSE_RANK() OVER (PARTITION BY domain_code ORDER BY views DESC) AS dense_rank,
        ROW_NUMBER() OVER (PARTITION BY domain_code ORDER BY views DESC, page_title) AS row_number
    FROM candidates
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
