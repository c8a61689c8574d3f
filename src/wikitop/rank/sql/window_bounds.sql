-- Per domain code, a total that the last place of the window's list reaches for sure.
--
-- Input  seed_top: top_pages.sql run over window_seeds.sql, blacklist applied.
-- Output (domain_code, min_total), only for domain codes whose seed list is full: it has
--        ${top} pages whose totals are at least their seed sums, so at least the lowest of
--        those sums. A domain code without a full seed list has no bound.
-- With ties 'dense' (${top} distinct seed sums) the bound is only a guess, which
-- window_unproven_bounds.sql checks once the pages it lets through are summed.
SELECT domain_code, MIN(views) AS min_total
FROM seed_top
GROUP BY domain_code
HAVING CASE WHEN '${ties}' = 'dense' THEN COUNT(DISTINCT views) ELSE COUNT(*) END >= ${top}
