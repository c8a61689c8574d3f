"""What a run is asked to do. The CLI fills this from flags and environment variables."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import fsspec.utils
import platformdirs

from wikitop.blacklist import DEFAULT_BLACKLIST
from wikitop.engines import DEFAULT_MEMORY_LIMIT
from wikitop.fetch import DEFAULT_SOURCE, DEFAULT_USER_AGENT, SERVER_CONNECTION_LIMIT, RetryPolicy
from wikitop.projects import Listing


def default_cache_dir() -> Path:
    return platformdirs.user_cache_path("wikitop")


@dataclass
class Settings:
    sources: list[str] = field(default_factory=lambda: [DEFAULT_SOURCE])
    out: str = "./wikitop-out"
    fmt: str = "csv"
    blacklist: str | None = DEFAULT_BLACKLIST
    top: int = 25
    ties: str = "rank"
    listing: Listing = field(default_factory=Listing)
    strict: bool = False
    force: bool = False
    engine: str = "duckdb"
    spark_conf: dict[str, str] = field(default_factory=dict)
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    cache_dir: Path = field(default_factory=default_cache_dir)
    keep_totals: bool = False
    keep_raw: bool = True
    user_agent: str = DEFAULT_USER_AGENT
    max_connections: int = SERVER_CONNECTION_LIMIT
    allow_more_connections: bool = False
    wait_seconds: float = 0.0
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    # fsspec options for ``out``, e.g. from storage_options_from_flags; never logged or published.
    storage_options: dict = field(default_factory=dict)

    @property
    def totals_dir(self) -> Path:
        """The local lake of hourly page totals (Parquet), reused by days and windows."""
        return self.cache_dir / "totals"


def parse_spark_properties(text: str) -> dict[str, str]:
    """``key=value`` lines (the original SPARK_PROPERTIES format); blank lines and # comments ignored."""
    properties = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"Spark property {line!r} is not key=value")
        properties[key.strip()] = value.strip()
    return properties


def storage_options_from_flags(
    out: str, endpoint_url: str | None = None, region: str | None = None, pairs: Iterable[str] = ()
) -> dict:
    """fsspec options for ``out`` from the S3 flags (ignored for other outputs) and
    ``key=value`` pairs (applied last).

    A dotted key nests (``config_kwargs.read_timeout=60``); a value is read as JSON
    when it parses (``anon=true``, ``max_concurrency=4``) and as text otherwise.
    Credentials are best left to the standard AWS variables and profiles.
    """
    options: dict = {}
    client = {key: value for key, value in (("endpoint_url", endpoint_url), ("region_name", region)) if value}
    if client and fsspec.utils.get_protocol(out) in ("s3", "s3a"):
        options["client_kwargs"] = client
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError("a --storage-option is not KEY=VALUE")  # no echo: it may hold a secret
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, name = key.strip().split(".")
        target = options
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ValueError(f"storage option {key.strip()!r} nests under a value that is not a mapping")
        target[name] = value
    return options
