"""What a run is asked to do: from keyword arguments, the environment (``Settings.from_env``)
or the command line's options (``Settings.from_options``), checked as it is made."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fsspec.utils
import platformdirs

from wikitop.errors import WikitopError
from wikitop.lake import default_lake
from wikitop.publish.store import FORMATS
from wikitop.rank import DEFAULT_MEMORY_LIMIT, ENGINES
from wikitop.rank.blacklist import DEFAULT_BLACKLIST
from wikitop.rank.projects import Listing
from wikitop.rank.sql import TIE_RULES
from wikitop.source.download import DEFAULT_USER_AGENT, SERVER_CONNECTION_LIMIT, RetryPolicy, check_fetch_settings
from wikitop.source.fetch import DEFAULT_SOURCE
from wikitop.units import parse_duration, parse_size


class BadSettings(WikitopError, ValueError):
    """A setting that cannot be used; the message names it."""


def _deadline(duration: str | float) -> float | None:
    """A --deadline in seconds; 0 is no deadline (RetryPolicy's None)."""
    return parse_duration(duration) or None


# The flags of `wikitop hour` that take a value, and the setting each gives (Settings.from_args).
VALUE_FLAGS = {
    "--source": "sources",
    "--out": "out",
    "--s3-endpoint-url": "s3_endpoint_url",
    "--s3-region": "s3_region",
    "--storage-option": "storage_option_pairs",
    "--format": "fmt",
    "--blacklist": "blacklist",
    "--top": "top",
    "--ties": "ties",
    "--engine": "engine",
    "--memory-limit": "memory_limit",
    "--spark-properties": "spark_properties",
    "--spark-conf": "spark_conf",
    "--cache-dir": "cache_dir",
    "--lake": "lake",
    "--user-agent": "user_agent",
    "--max-connections": "max_connections",
    "--wait": "wait_seconds",
    "--poll-interval": "retry_policy.poll_interval",
    "--retries": "retry_policy.retries",
    "--retry-delay": "retry_policy.backoff_base",
    "--stall-timeout": "retry_policy.stall_timeout",
    "--deadline": "retry_policy.deadline",
    "--namespace": "listing.namespace",
    "--min-views": "listing.min_views",
    "--exclude": "listing.exclude",
    "--group": "listing.group",
}
# Its flags without a value: the setting each gives and its value; None for the log's verbosity.
SWITCH_FLAGS = {
    "--no-blacklist": ("blacklist", None),
    "--strict": ("strict", True),
    "--allow-empty": ("allow_empty", True),
    "--force": ("force", True),
    "--keep-totals": ("keep_totals", True),
    "--no-keep-totals": ("keep_totals", False),
    "--allow-more-connections": ("allow_more_connections", True),
    "--exclude-noise": ("listing.exclude_noise", True),
    "--verbose": None,
    "--quiet": None,
}
# Flags given more than once add up; other flags given again replace their value.
_REPEATABLE = frozenset({"sources", "storage_option_pairs", "spark_conf", "listing.exclude"})
_CONVERSIONS = {
    "top": int,
    "max_connections": int,
    "listing.min_views": int,
    "retry_policy.retries": int,
    "cache_dir": Path,
    "wait_seconds": parse_duration,
    "retry_policy.poll_interval": parse_duration,
    "retry_policy.backoff_base": parse_duration,
    "retry_policy.stall_timeout": parse_duration,
    "retry_policy.deadline": _deadline,
}


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
    allow_empty: bool = False
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
    # The pageviews lake (a folder or an fsspec URL); None: the cache's folder lake/.
    lake: str | None = None
    lake_storage_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sources:
            raise BadSettings("no source given")
        if self.fmt not in FORMATS:
            raise BadSettings(f"unknown format {self.fmt!r}: choose one of {', '.join(FORMATS)}")
        if self.ties not in TIE_RULES:
            raise BadSettings(f"unknown tie rule {self.ties!r}: choose one of {', '.join(TIE_RULES)}")
        if self.engine not in ENGINES:
            raise BadSettings(f"unknown engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if not isinstance(self.top, int) or self.top < 1:
            raise BadSettings(f"top must be a whole number of at least 1, not {self.top!r}")
        try:
            parse_size(self.memory_limit)
            check_fetch_settings(self.user_agent, self.max_connections, self.allow_more_connections)
        except ValueError as error:
            raise BadSettings(str(error)) from None
        self.cache_dir = Path(self.cache_dir)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Settings from the environment variables the command line reads (SOURCE_URL_PREFIX,
        PATH_OUT_PREFIX, BLACKLIST_URL_IN, FORCE_REPROCESS, SPARK_PROPERTIES, WIKITOP_*,
        AWS_REGION), then ``overrides`` (Settings' own field names)."""
        env = os.environ if environ is None else environ
        given = {name: env[name] for name in env if env[name].strip()}
        values: dict = {}
        try:
            if "SOURCE_URL_PREFIX" in given:
                values["sources"] = given["SOURCE_URL_PREFIX"].split()
            for name, field_name in (("PATH_OUT_PREFIX", "out"), ("BLACKLIST_URL_IN", "blacklist"),
                                     ("WIKITOP_ENGINE", "engine"), ("WIKITOP_DUCKDB_MEMORY_LIMIT", "memory_limit"),
                                     ("WIKITOP_USER_AGENT", "user_agent")):
                if name in given:
                    values[field_name] = given[name].strip()
            if "WIKITOP_LAKE" in given:
                values["lake"] = given["WIKITOP_LAKE"].strip()
            if "WIKITOP_CACHE_DIR" in given:
                values["cache_dir"] = Path(given["WIKITOP_CACHE_DIR"])
            if "FORCE_REPROCESS" in given:
                values["force"] = _flag("FORCE_REPROCESS", given["FORCE_REPROCESS"])
            if "SPARK_PROPERTIES" in given:
                values["spark_conf"] = parse_spark_properties(given["SPARK_PROPERTIES"])
            policy = {}
            durations = (("WIKITOP_RETRY_DELAY", "backoff_base"), ("WIKITOP_STALL_TIMEOUT", "stall_timeout"),
                         ("WIKITOP_POLL_INTERVAL", "poll_interval"))
            for name, field_name in durations:
                if name in given:
                    policy[field_name] = parse_duration(given[name])
            if "WIKITOP_DEADLINE" in given:
                policy["deadline"] = _deadline(given["WIKITOP_DEADLINE"])
            if "WIKITOP_RETRIES" in given:
                policy["retries"] = int(given["WIKITOP_RETRIES"])
            if policy:
                values["retry_policy"] = RetryPolicy(**policy)
            out = overrides.get("out", values.get("out", cls.out))
            values["storage_options"] = storage_options_from_flags(out, region=given.get("AWS_REGION"))
            lake = overrides.get("lake", values.get("lake", cls.lake))
            values["lake_storage_options"] = storage_options_from_flags(lake or "", region=given.get("AWS_REGION"))
        except ValueError as error:
            raise BadSettings(str(error)) from None
        return cls(**(values | overrides))

    @classmethod
    def from_args(cls, args: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from flags of ``wikitop hour`` (e.g. ``shlex.split("--format parquet --top 50")``)
        over the environment it reads (``from_env``), without the command line's parser, so that
        a caller handed a command line (the Airflow DAG) uses what the command would. BadSettings
        for a flag the command does not have, or a value it would refuse."""
        given: dict = {}
        switches: list[tuple[str, object]] = []
        arguments = iter(args)
        for argument in arguments:
            flag, equals, text = argument.partition("=") if argument.startswith("--") else (argument, "", "")
            if re.fullmatch(r"-[vq]+", flag):  # -vv: the log's verbosity, no setting
                continue
            if flag in SWITCH_FLAGS and not equals:
                if SWITCH_FLAGS[flag] is not None:
                    switches.append(SWITCH_FLAGS[flag])
                continue
            if flag not in VALUE_FLAGS:
                raise BadSettings(f"no such flag: {argument}" if argument.startswith("-")
                                  else f"unexpected argument {argument!r}")
            if not equals:
                text = next(arguments, None)
                if text is None:
                    raise BadSettings(f"{flag} needs a value")
            name = VALUE_FLAGS[flag]
            try:
                value = _CONVERSIONS.get(name, str)(text)
            except ValueError as error:
                raise BadSettings(f"{flag}: {error}") from None
            given[name] = [*given.get(name, []), value] if name in _REPEATABLE else value
        settings = cls.from_env(environ)
        values = {name: value for name, value in given.items() if name in _FIELDS and name != "spark_conf"}
        listing = {name.partition(".")[2]: value for name, value in [*given.items(), *switches]
                   if name.startswith("listing.")}
        values.update((name, value) for name, value in switches if not name.startswith("listing."))
        try:
            if "spark_properties" in given or "spark_conf" in given:
                conf = parse_spark_properties(given["spark_properties"]) if "spark_properties" in given else {
                    **settings.spark_conf}
                for pairs in given.get("spark_conf", []):
                    conf.update(parse_spark_properties(pairs))
                values["spark_conf"] = conf
            policy = {name.partition(".")[2]: value for name, value in given.items()
                      if name.startswith("retry_policy.")}
            if policy:
                values["retry_policy"] = dataclasses.replace(settings.retry_policy, **policy)
            if listing:
                values["listing"] = dataclasses.replace(settings.listing, **listing)
            if given.keys() & {"out", "lake", "s3_endpoint_url", "s3_region", "storage_option_pairs"}:
                env = os.environ if environ is None else environ
                for url, name in ((values.get("out", settings.out), "storage_options"),
                                  (values.get("lake", settings.lake) or "", "lake_storage_options")):
                    values[name] = storage_options_from_flags(
                        url, given.get("s3_endpoint_url"), given.get("s3_region") or env.get("AWS_REGION") or None,
                        given.get("storage_option_pairs", ()))
        except ValueError as error:
            raise BadSettings(str(error)) from None
        return dataclasses.replace(settings, **values)

    @classmethod
    def from_options(cls, options: Mapping, keep_totals_default: bool) -> Settings:
        """Settings from the command line's options, named as its flags are."""
        keep_totals = options["keep_totals"]
        try:
            storage_options, lake_storage_options = (
                storage_options_from_flags(url, options["s3_endpoint_url"], options["s3_region"],
                                           options["storage_option_pairs"])
                for url in (options["out"], options["lake"] or ""))
            retry_policy = RetryPolicy(retries=options["retries"], backoff_base=options["retry_delay"],
                                       stall_timeout=options["stall_timeout"], poll_interval=options["poll_interval"],
                                       deadline=_deadline(options["deadline"]))
        except ValueError as error:
            raise BadSettings(str(error)) from None
        return cls(
            sources=list(options["sources"]) or [DEFAULT_SOURCE],
            out=options["out"],
            fmt=options["fmt"],
            blacklist=None if options["no_blacklist"] else options["blacklist"],
            top=options["top"],
            ties=options["ties"],
            listing=Listing(exclude_noise=options["exclude_noise"], namespace=options["namespace"],
                            min_views=options["min_views"], exclude=options["exclude_patterns"],
                            group=options["group"]),
            strict=options["strict"],
            allow_empty=options["allow_empty"],
            force=options["force"],
            engine=options["engine"],
            spark_conf=options["spark_conf"],
            memory_limit=options["memory_limit"],
            cache_dir=Path(options["cache_dir"]) if options["cache_dir"] else default_cache_dir(),
            keep_totals=keep_totals_default if keep_totals is None else keep_totals,
            user_agent=options["user_agent"],
            max_connections=options["max_connections"],
            allow_more_connections=options["allow_more_connections"],
            wait_seconds=options["wait_seconds"],
            retry_policy=retry_policy,
            storage_options=storage_options,
            lake=options["lake"],
            lake_storage_options=lake_storage_options,
        )

    @property
    def lake_url(self) -> str:
        """Where the pageviews lake is: --lake, or the cache's folder lake/."""
        return self.lake or str(default_lake(self.cache_dir))


_FIELDS = frozenset(field.name for field in dataclasses.fields(Settings))


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
            # No echo of the pair: it may hold a secret.
            raise ValueError("a --storage-option needs an = between its key and its value")
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


def _flag(name: str, text: str) -> bool:
    spelled = text.strip().lower()
    if spelled in ("1", "true", "yes", "on"):
        return True
    if spelled in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={text!r} is neither true nor false")
