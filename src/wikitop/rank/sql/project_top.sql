-- A top list over projects, with the share of each page's views that came from mobile codes.
--
-- Input  listed_top(domain_code, page_title, views, rank): top_pages.sql over projects;
--        listed_pageviews (listed_pageviews.sql): the rows the list was summed from.
-- Output (project, page_title, views, mobile_share, rank) sorted by project, views
--        descending, title; mobile_share is NULL for a page of 0 views.
--
-- The share is one division of two exact 64-bit sums in double precision, which every
-- engine rounds alike (IEEE 754), so that it is the same on each.
SELECT
    t.domain_code AS project,
    t.page_title,
    t.views,
    CASE WHEN t.views > 0 THEN CAST(m.mobile_views AS DOUBLE) / CAST(t.views AS DOUBLE) END AS mobile_share,
    t.rank
FROM listed_top AS t
JOIN (
    SELECT p.domain_code, p.page_title, CAST(SUM(p.mobile_views) AS BIGINT) AS mobile_views
    FROM listed_pageviews AS p
    JOIN listed_top AS l
      ON l.domain_code = p.domain_code
     AND l.page_title = p.page_title
    GROUP BY p.domain_code, p.page_title
) AS m
  ON m.domain_code = t.domain_code
 AND m.page_title = t.page_title
ORDER BY project, views DESC, page_title
