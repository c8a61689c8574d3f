-- The pages of page_totals whose title may have another canonical form, in the domains
-- the blacklist names, with that form. Only a title with '%' can change: the other step
-- of canonicalising turns spaces into '_', and a dump's titles hold no space (the
-- space separates its fields).
--
-- Input  page_totals(domain_code, page_title, views), one row per page;
--        blacklist(domain_code, page_title).
-- Output (domain_code, page_title, views, canonical_title).
-- wikitop_canonical_title() is registered by each engine (spaces to '_', then
-- percent-decoding until the title no longer changes). A separate relation so that an
-- engine can materialize it: the function then runs once per row, in full batches.
SELECT domain_code, page_title, views, wikitop_canonical_title(page_title) AS canonical_title
FROM page_totals
WHERE instr(page_title, '%') > 0
  AND domain_code IN (SELECT domain_code FROM blacklist)
