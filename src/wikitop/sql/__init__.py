"""The transformation, as SQL shared by every engine."""

from importlib import resources
from string import Template

TIE_RULES = ("rank", "dense", "row")


def render(name: str, **params) -> str:
    """The text of ``name``.sql with ``${param}`` placeholders filled in.

    Only validated values are substituted: an integer ``top`` and a known tie rule.
    """
    if "top" in params and (not isinstance(params["top"], int) or params["top"] < 1):
        raise ValueError(f"top must be a positive integer, not {params['top']!r}")
    if "ties" in params and params["ties"] not in TIE_RULES:
        raise ValueError(f"ties must be one of {', '.join(TIE_RULES)}")
    text = resources.files(__package__).joinpath(f"{name}.sql").read_text(encoding="utf-8")
    return Template(text).substitute(params)
