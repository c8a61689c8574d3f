-- The pages of page_totals whose title may have another canonical form, in the domains
-- the blacklist names: only titles with '%' or ' ' can change when canonicalised.
--
-- Input  page_totals(domain_code, page_title, views), one row per page;
--        blacklist(domain_code, page_title).
-- A separate relation so that an engine can materialize it: the canonicalising function
-- (blacklisted_pages.sql) then gets these few rows in full batches, not a few per batch.
SELECT domain_code, page_title, views
FROM page_totals
WHERE (instr(page_title, '%') > 0 OR instr(page_title, ' ') > 0)
  AND domain_code IN (SELECT domain_code FROM blacklist)
