"""wikitop: the most viewed pages of each Wikimedia wiki, from the public pageview dumps.

The library's functions (``top_pages``, ``publish_result``, ``run_range``, ``read_result``) and
types are imported on first use, so that ``import wikitop`` stays cheap for the command line.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "top_pages": "wikitop.api",
    "publish_result": "wikitop.api",
    "run_range": "wikitop.api",
    "read_result": "wikitop.api",
    "make_settings": "wikitop.api",
    "NotPublishedResult": "wikitop.publish.results",
    "Settings": "wikitop.settings",
    "BadSettings": "wikitop.settings",
    "Period": "wikitop.model",
    "Outcome": "wikitop.pipeline",
    "Status": "wikitop.pipeline",
    "WikitopError": "wikitop.errors",
    "HourError": "wikitop.hours",
    "FetchError": "wikitop.source.fetch",
    "NotPublished": "wikitop.source.fetch",
    "BlacklistError": "wikitop.rank.blacklist",
    "PublishError": "wikitop.publish.store",
    "BadInput": "wikitop.rank",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'wikitop' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
