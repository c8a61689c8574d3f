-- Total views per page: one row per (domain_code, page_title).
-- Input pageviews(domain_code, page_title, views): hourly page totals of several hours
-- (a pair appears once per hour, and hours add up), or the good lines of an hour whose
-- pairs are not unique.
-- Counts are never negative, so a sum passes 2^63-1 only where the page's total does;
-- engines then name the page (overflowing_pages.sql) instead of returning a wrong total.
SELECT domain_code, page_title, CAST(SUM(views) AS BIGINT) AS views
FROM pageviews
GROUP BY domain_code, page_title
