"""Rank: the shared SQL (``rank/sql``) run by an engine over an hour's lines or the lake's totals.

Each engine (``duckdb_engine``, embedded, the default; ``spark_engine``, for clusters) only
knows how to read its inputs into the relations the SQL expects (``raw_lines``, ``pageviews``,
``blacklist``) and how to hand the result back as a pyarrow table; the transformation itself
is the same text for all of them. What a result leaves out is decided here too: the blacklist
(``blacklist``) and the noise controls and grouping (``projects``). A new engine goes here.
"""

from __future__ import annotations

from wikitop.rank.base import (
    DEFAULT_MEMORY_LIMIT,
    ENGINES,
    HOURS_AT_ONCE,
    BadInput,
    Engine,
    EngineResult,
    LineReport,
    ViewsOverflow,
)

__all__ = ["DEFAULT_MEMORY_LIMIT", "ENGINES", "HOURS_AT_ONCE", "BadInput", "Engine", "EngineResult", "LineReport",
           "ViewsOverflow", "create_engine"]


def create_engine(
    name: str, spark_conf: dict[str, str] | None = None, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> Engine:
    if name == "duckdb":
        from wikitop.rank.duckdb_engine import DuckDBEngine

        return DuckDBEngine(memory_limit=memory_limit)
    if name == "spark":
        from wikitop.rank.spark_engine import SparkEngine

        return SparkEngine(spark_conf or {})
    raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
