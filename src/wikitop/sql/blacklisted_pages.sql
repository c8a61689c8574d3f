-- The pages of page_totals that are on the blacklist (at most one row per entry).
--
-- Input  page_totals(domain_code, page_title, views), one row per page;
--        blacklist(domain_code, page_title) with titles in canonical form.
--
-- wikitop_canonical_title() is registered by each engine (percent-decoding until the
-- title no longer changes); only titles with '%' or ' ' can change, so only they pay.
SELECT t.domain_code, t.page_title
FROM page_totals AS t
JOIN blacklist AS b
  ON b.domain_code = t.domain_code
 AND b.page_title = CASE
         WHEN instr(t.page_title, '%') > 0 OR instr(t.page_title, ' ') > 0
         THEN wikitop_canonical_title(t.page_title)
         ELSE t.page_title
     END
