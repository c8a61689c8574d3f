-- The rows of the pages that may be listed, under the key the lists rank them by: rows of
-- the pages left out are dropped, and each domain code is replaced by its project when the
-- codes of a project are grouped (its mobile codes' views are also counted apart).
--
-- Input  all_pageviews(domain_code, page_title, views): an hour's page totals, or the
--        hourly rows of a window;
--        domain_projects(domain_code, project, mobile): a row per domain code of the input
--        (project is the domain code itself, and mobile false, when codes are not grouped);
--        excluded_titles(domain_code, page_title): the titles left out (the '-' title,
--        main pages);
--        excluded_prefixes(domain_code, prefix): the namespace names whose pages are left
--        out; a title is in a namespace when its text before the first ':' is one, in any
--        case (MediaWiki compares namespace names case-insensitively): both sides are put
--        through the engine's own lower(), so that each engine compares them alike.
-- Params ${excluded_patterns}: a condition on p.page_title, true where an --exclude glob
--        matches the whole title.
-- Output (domain_code, page_title, views, mobile_views).
--
-- Pages are left out by their domain code and title alone, so leaving out their hourly rows
-- leaves out the page in a window too: its rows are never seeds nor summed.
SELECT
    d.project AS domain_code,
    p.page_title,
    p.views,
    CASE WHEN d.mobile THEN p.views ELSE 0 END AS mobile_views
FROM all_pageviews AS p
JOIN domain_projects AS d
  ON d.domain_code = p.domain_code
LEFT JOIN excluded_titles AS e
  ON e.domain_code = p.domain_code
 AND e.page_title = p.page_title
LEFT JOIN excluded_prefixes AS x
  ON x.domain_code = p.domain_code
 AND lower(x.prefix) = CASE WHEN instr(p.page_title, ':') > 1
                           THEN lower(substring(p.page_title, 1, instr(p.page_title, ':') - 1)) END
WHERE e.page_title IS NULL
  AND x.prefix IS NULL
  AND NOT (${excluded_patterns})
