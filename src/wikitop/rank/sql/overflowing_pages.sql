-- A page whose views add up to more than a signed 64-bit integer holds (2^63-1), if any:
-- the page an engine names when a sum of views overflows.
--
-- Input  summed_pageviews(domain_code, page_title, views): the rows that were being summed, a
--        relation of its own, so that naming them never redefines one the sum was built on.
-- Output (domain_code, page_title), at most one row: the first such page.
--
-- DECIMAL(38, 0) holds the sum of any number of 64-bit counts an hour or a window can
-- have. Only run after an overflow: page_totals.sql sums in 64 bits, which is exact as
-- long as no page's total passes them (counts are never negative).
SELECT domain_code, page_title
FROM summed_pageviews
GROUP BY domain_code, page_title
HAVING SUM(CAST(views AS DECIMAL(38, 0))) > 9223372036854775807
ORDER BY domain_code, page_title
LIMIT 1
