"""The transformation, as SQL shared by every engine."""

from importlib import resources
from string import Template

TIE_RULES = ("rank", "dense", "row")


def render(name: str, **params) -> str:
    """The text of ``name``.sql with ``${param}`` placeholders filled in.

    Only validated values are substituted: positive integers ``top`` and ``hours``, a
    non-negative integer ``min_views``, a known tie rule, and ``excluded_patterns``, globs
    that become a condition on page_title written only with characters no engine reads
    specially.
    """
    for name_of_count, least in (("top", 1), ("hours", 1), ("min_views", 0)):
        value = params.get(name_of_count, least)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            adjective = "positive" if least else "non-negative"
            raise ValueError(f"{name_of_count} must be a {adjective} integer, not {value!r}")
    if "ties" in params and params["ties"] not in TIE_RULES:
        raise ValueError(f"ties must be one of {', '.join(TIE_RULES)}")
    if "excluded_patterns" in params:
        params["excluded_patterns"] = _title_matches(params["excluded_patterns"])
    text = resources.files(__package__).joinpath(f"{name}.sql").read_text(encoding="utf-8")
    return Template(text).substitute(params)


def _title_matches(patterns) -> str:
    """A condition true where p.page_title matches one of the globs. regexp_like() is Spark's
    (a macro in DuckDB); the regular expressions hold no quote (see glob_regex)."""
    from wikitop.rank.projects import glob_regex

    if isinstance(patterns, str):
        raise ValueError("excluded_patterns must be a sequence of globs, not one string")
    return " OR ".join(f"regexp_like(p.page_title, '{glob_regex(pattern)}')" for pattern in patterns) or "FALSE"
