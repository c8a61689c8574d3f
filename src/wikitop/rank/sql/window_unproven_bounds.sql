-- The domain codes whose bound may have cut their list short, to be summed again unbounded.
--
-- Input  window_bounds(domain_code, min_total) (window_bounds.sql);
--        window_top: top_pages.sql over the pages that window_pageviews.sql let through.
-- Output (domain_code).
--
-- Every page whose total reaches min_total was summed, so a list holding ${top} pages
-- (${top} distinct totals with ties 'dense') that reach it is the true one. With ties
-- 'rank' or 'row' the seeds prove this in advance; with 'dense' they cannot, since pages
-- with distinct seed sums may end with equal totals, and a page never among the seeds can
-- then take one of the ${top} places.
SELECT b.domain_code
FROM window_bounds AS b
LEFT JOIN window_top AS t
  ON t.domain_code = b.domain_code
 AND t.views >= b.min_total
GROUP BY b.domain_code
HAVING CASE WHEN '${ties}' = 'dense' THEN COUNT(DISTINCT t.views) ELSE COUNT(t.views) END < ${top}
