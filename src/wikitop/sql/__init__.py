"""The transformation, as SQL shared by every engine."""

from importlib import resources
from string import Template

TIE_RULES = ("rank", "dense", "row")


def render(name: str, **params) -> str:
    """The text of ``name``.sql with ``${param}`` placeholders filled in.

    Only validated values are substituted: positive integers ``top`` and ``hours`` and a
    known tie rule.
    """
    for name_of_count in ("top", "hours"):
        value = params.get(name_of_count, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name_of_count} must be a positive integer, not {value!r}")
    if "ties" in params and params["ties"] not in TIE_RULES:
        raise ValueError(f"ties must be one of {', '.join(TIE_RULES)}")
    text = resources.files(__package__).joinpath(f"{name}.sql").read_text(encoding="utf-8")
    return Template(text).substitute(params)
