-- Total views per page of a project, and how many of them came from its mobile codes.
--
-- Input  listed_pageviews (listed_pageviews.sql) over an hour's page totals: a page has a row
--        per domain code of its project.
-- Output (domain_code, page_title, views, mobile_views): domain_code holds the project.
SELECT
    domain_code,
    page_title,
    CAST(SUM(views) AS BIGINT) AS views,
    CAST(SUM(mobile_views) AS BIGINT) AS mobile_views
FROM listed_pageviews
GROUP BY domain_code, page_title
