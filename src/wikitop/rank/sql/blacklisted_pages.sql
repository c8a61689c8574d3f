-- The pages of page_totals that are on the blacklist (at most one row per page), with their views.
--
-- Input  page_totals(domain_code, page_title, views), one row per page;
--        retitled_pages(domain_code, page_title, views, canonical_title) (retitled_pages.sql);
--        blacklist(domain_code, page_title), distinct pairs, titles in canonical form.
--
-- Titles are matched as written, and those of retitled_pages also in canonical form.
SELECT t.domain_code, t.page_title, t.views
FROM page_totals AS t
JOIN blacklist AS b
  ON b.domain_code = t.domain_code
 AND b.page_title = t.page_title
UNION ALL
SELECT c.domain_code, c.page_title, c.views
FROM retitled_pages AS c
JOIN blacklist AS b
  ON b.domain_code = c.domain_code
 AND b.page_title = c.canonical_title
WHERE c.canonical_title <> c.page_title
