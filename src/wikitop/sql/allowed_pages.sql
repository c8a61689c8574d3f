-- Page totals without the blacklisted pages.
--
-- Input  page_totals(domain_code, page_title, views), one row per page;
--        blacklisted_pages(domain_code, page_title) (blacklisted_pages.sql).
SELECT t.domain_code, t.page_title, t.views
FROM page_totals AS t
LEFT JOIN blacklisted_pages AS b
  ON b.domain_code = t.domain_code
 AND b.page_title = t.page_title
WHERE b.domain_code IS NULL
