"""What a run is asked to do. The CLI fills this from flags and environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from wikitop.blacklist import DEFAULT_BLACKLIST
from wikitop.fetch import DEFAULT_SOURCE, DEFAULT_USER_AGENT, SERVER_CONNECTION_LIMIT


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
    strict: bool = False
    force: bool = False
    engine: str = "duckdb"
    spark_conf: dict[str, str] = field(default_factory=dict)
    cache_dir: Path = field(default_factory=default_cache_dir)
    keep_totals: bool = False
    keep_raw: bool = True
    user_agent: str = DEFAULT_USER_AGENT
    max_connections: int = SERVER_CONNECTION_LIMIT
    allow_more_connections: bool = False
    wait_seconds: float = 0.0
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
