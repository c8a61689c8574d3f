-- Types each line of an hourly dump and names what is wrong with a bad one.
--
-- Input  raw_lines(domain_code, page_title, views_text): the fields of each line that
--        had exactly four space-separated fields, as text ('' for an empty field);
--        an empty line is a row whose domain_code is NULL.
-- Output (domain_code, page_title, views, problem): problem is NULL for a good line.
--
-- Titles written by Spark's CSV writer (dumps from 2023-02 on) arrive quoted when they
-- contain a double quote: "\"Weird_Al\"_Yankovic". Older dumps never quote, so a title
-- is unquoted only when its inner quotes are all escaped and at least one is: the
-- pre-2023 title "Heroes" stays as it is. The cheap LIKE comes first: it rules out
-- almost every title before the others are evaluated.
-- String literals are raw (no backslash escapes): Spark runs this with
-- spark.sql.parser.escapedStringLiterals=true, as DuckDB reads literals anyway.
-- Text casts say STRING: Spark rejects VARCHAR without a length, DuckDB reads it as VARCHAR.
SELECT
    domain_code,
    CASE
        WHEN page_title LIKE '"%"'
         AND length(page_title) >= 4
         AND instr(substring(page_title, 2, length(page_title) - 2), '\"') > 0
         AND instr(replace(substring(page_title, 2, length(page_title) - 2), '\"', ''), '"') = 0
        THEN replace(substring(page_title, 2, length(page_title) - 2), '\"', '"')
        ELSE page_title
    END AS page_title,
    CASE WHEN problem IS NULL THEN views END AS views,
    problem
FROM (
    SELECT
        domain_code,
        page_title,
        views,
        CASE
            WHEN domain_code IS NULL THEN 'empty_line'
            WHEN domain_code = '' THEN 'empty_domain_code'
            WHEN views IS NULL OR CAST(views AS STRING) <> views_text THEN 'invalid_count'
            WHEN views < 0 THEN 'negative_count'
        END AS problem
    FROM (
        -- A count is good when it is the plain decimal form of a 64-bit integer:
        -- no sign, spaces, leading zeros or fraction (they do not survive the round trip).
        SELECT domain_code, page_title, views_text, TRY_CAST(views_text AS BIGINT) AS views
        FROM raw_lines
    ) AS cast_lines
) AS typed
