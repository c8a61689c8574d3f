"""Folders of one data file and a ``_SUCCESS`` marker, on a local disk or any fsspec URL,
written atomically, marker last: what results (``wikitop.publish.store``) and the lake
(``wikitop.lake``) are stored as.

The data file is named after a digest of its bytes and written first; the marker, naming
it, written last replaces the old one in a single step; older data files are removed only
after that. So a run that dies leaves the earlier folder readable, and nothing without a
marker is ever trusted; nor is a marker whose data file is gone.

Runs that write the same folder at once: in a local folder they take turns (a lock on
``_SUCCESS.lock``, which readers ignore); on an object store, where no lock is at hand, a
run removes only data files older than its own start that the marker, read again, does
not name. That still lets one run remove the data file of another that has uploaded it but
not yet its marker; so a run's last step, after its removals, is to read the marker again
and, when the file it names is gone, put its own data file and marker back. Whichever run
acts last thus leaves a marker naming a file that exists.

Object stores have no rename, and need none: a PUT (or a completed multipart upload)
becomes visible whole, so there the data object is uploaded first and the marker PUT
last. What a killed upload leaves behind (a data object without a marker, the parts of an
unfinished multipart upload) is removed by the next successful write of the same folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import fsspec.exceptions
import fsspec.utils

from wikitop import locks
from wikitop.errors import WikitopError
from wikitop.files import target_of_temporary, write_atomically
from wikitop.redact import redact, remember_secrets, secret_values, secrets_in_url, without_userinfo

MARKER = "_SUCCESS"
S3_PROTOCOLS = frozenset({"s3", "s3a"})
# Stores whose writes need no parent folders (and whose makedirs would touch the bucket).
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
# s3fs uploads data of at least twice this size as a multipart upload, smaller data in one PUT.
MULTIPART_PART_BYTES = 8 * 2**20
# botocore's retries, bounded: a refused or blackholed endpoint fails within about 20 s.
S3_CLIENT_CONFIG = {
    "connect_timeout": 5,
    "read_timeout": 15,
    "retries": {"mode": "standard", "total_max_attempts": 3},
}
# s3fs retries some errors again on top of botocore; one attempt of its own is enough.
S3FS_RETRIES = 1
# botocore's read timeout does not cover sending a body: an endpoint that takes the
# connection and never reads holds a PUT forever. So an upload, all its parts and retries,
# must end within this long plus one second per MiB (at least 1 MiB/s).
UPLOAD_BASE_SECONDS = 60.0
# How many times a run puts its data file and marker back before it gives up on runs that
# keep removing them (each round is a GET, a HEAD and at most two PUTs).
REPAIR_ROUNDS = 5

log = logging.getLogger(__name__)


class StorageError(WikitopError):
    """A store cannot be read or written."""


class FolderStore:
    """Folders under one prefix: a local folder or an fsspec URL such as s3://bucket/path.

    ``storage_options`` go to fsspec; for S3 they are laid over S3_CLIENT_CONFIG, so
    that an unreachable endpoint fails in seconds rather than minutes. Errors are raised
    as ``error`` (a StorageError), which subclasses name.
    """

    error: type[StorageError] = StorageError
    writing = "write to"  # what write_folder's errors say it could not do

    def __init__(self, out: str, storage_options: dict | None = None):
        protocol = fsspec.utils.get_protocol(out)
        self.is_s3 = protocol in S3_PROTOCOLS
        options = storage_options or {}
        if self.is_s3:
            options = _with_defaults({"config_kwargs": S3_CLIENT_CONFIG}, options)
        self._secrets = secret_values(options)
        remember_secrets([*self._secrets, *secrets_in_url(out)])
        try:
            self.fs, self.root = fsspec.core.url_to_fs(out, **options)
        except ImportError as error:
            hint = " (pip install 'wikitop[s3]')" if self.is_s3 else ""
            raise self.error(f"cannot use {without_userinfo(out)}: {error}{hint}") from None
        except (ValueError, TypeError) as error:
            raise self.error(f"cannot use {without_userinfo(out)}: {self._describe(error)}") from None
        if self.is_s3:
            self.fs.retries = S3FS_RETRIES
        if isinstance(getattr(self.fs, "loop", None), asyncio.AbstractEventLoop):
            _log_orphaned_request_errors(self.fs.loop)
        protocols = _protocols(self.fs)
        self.is_local = "file" in protocols
        self.is_object_store = bool(OBJECT_STORE_PROTOCOLS & set(protocols))
        self.root = self.root.rstrip("/")
        # s3fs 2026.2 and later send a HEAD before a whole-object GET (to split large reads),
        # unless reads may not be split; the marker is small, and one GET is enough.
        splits_reads = self.is_s3 and "max_concurrency" in inspect.signature(self.fs._cat_file).parameters
        self._one_request = {"max_concurrency": 1} if splits_reads else {}

    @property
    def location(self) -> str:
        return self.display(self.root)

    def display(self, path: str) -> str:
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def read_marker_in(self, folder: str) -> dict | None:
        """The marker's metadata of ``folder``, or None when it has none; one GET on S3."""
        path = f"{folder}/{MARKER}"
        try:
            return marker_record(self.fs.cat_file(path, **self._one_request))
        except FileNotFoundError as error:
            if _error_code(error) == "NoSuchBucket":
                raise self.error(f"cannot read {self.display(path)}: {self._describe(error)}") from None
            return None
        except Exception as error:  # storage errors come in many types
            raise self.error(f"cannot read {self.display(path)}: {self._describe(error)}") from None

    def file_in(self, folder: str, marker: dict) -> bool:
        """The data file the marker names exists in ``folder`` (one HEAD on S3)."""
        name = marker.get("file")
        if not isinstance(name, str) or not name or "/" in name:
            return False
        try:
            self.fs.invalidate_cache(folder)
            return self.fs.exists(f"{folder}/{name}")
        except Exception as error:
            raise self.error(f"cannot read {self.display(folder)}: {self._describe(error)}") from None

    def write_folder(self, folder: str, data: bytes, extension: str, marker: dict) -> str:
        """Write the data file (``part-DIGEST.EXTENSION``, named after the first 16 hex digits of
        its bytes' SHA-256), then the marker (with ``file`` and ``file_bytes`` added), then
        remove leftovers; returns the data file's path."""
        name = f"part-{hashlib.sha256(data).hexdigest()[:16]}.{extension}"
        marker = dict(marker, file=name, file_bytes=len(data))
        marker_text = redact(json.dumps(marker, indent=2, ensure_ascii=False), self._secrets)
        started = datetime.now(UTC)
        try:
            if not self.is_object_store:  # on object stores makedirs probes, or even creates, the bucket
                self.fs.makedirs(folder, exist_ok=True)
            with locks.exclusive(Path(folder) / MARKER) if self.is_local else contextlib.nullcontext():
                self._write(f"{folder}/{name}", data)
                self._write(f"{folder}/{MARKER}", marker_text.encode())
                self._remove_leftovers_or_warn(folder, name, started)
                if not self.is_local:
                    self._repair_marker(folder, name, data, marker_text.encode())
        except Exception as error:
            raise self.error(f"cannot {self.writing} {self.display(folder)}: {self._describe(error)}") from None
        return f"{folder}/{name}"

    def _repair_marker(self, folder: str, name: str, data: bytes, marker: bytes) -> None:
        """Make sure the folder's marker names a data file that exists, putting ours back when
        a concurrent run removed the file it names (see the module's docstring)."""
        for _ in range(REPAIR_ROUNDS):
            self.fs.invalidate_cache(folder)
            current = marker_record(self.fs.cat_file(f"{folder}/{MARKER}", **self._one_request)) or {}
            named = current.get("file")
            if isinstance(named, str) and "/" not in named and self.fs.exists(f"{folder}/{named}"):
                return
            log.info("another run removed the data file %s names; putting ours back", self.display(folder))
            if not self.fs.exists(f"{folder}/{name}"):
                self._write(f"{folder}/{name}", data)
            self._write(f"{folder}/{MARKER}", marker)
        raise RuntimeError(f"other runs kept removing the data file its marker names, {REPAIR_ROUNDS} times")

    def _remove_leftovers_or_warn(self, folder: str, keep: str, started: datetime) -> None:
        try:
            self._remove_leftovers(folder, keep=keep, started_before=started)
        except Exception as error:  # the folder is written; leftovers go on the next run
            log.warning("wrote %s but could not remove leftovers: %s", self.display(folder), self._describe(error))

    def _write(self, path: str, data: bytes) -> None:
        if self.is_s3:
            # A PUT, or a multipart upload once completed, becomes visible whole.
            bound = upload_bound_seconds(len(data))
            try:
                self.fs.pipe_file(path, data, chunksize=MULTIPART_PART_BYTES, timeout=bound)
            except fsspec.exceptions.FSTimeoutError:
                raise TimeoutError(
                    f"the storage endpoint {self._endpoint()} did not take the upload of {len(data)} bytes "
                    f"within {bound:.0f}s"
                ) from None
            return
        if not self.is_local:
            self.fs.pipe_file(path, data)
            return
        write_atomically(Path(path), data)

    def _endpoint(self) -> str:
        try:
            return self.fs.s3.meta.endpoint_url
        except AttributeError:  # no client made yet
            return "(unknown)"

    def _remove_leftovers(self, folder: str, keep: str, started_before: datetime) -> None:
        """Data and temporary files older than ``started_before`` that neither ``keep`` nor the
        marker (read again: another run may have published since) names, and (S3) abandoned
        multipart uploads."""
        # fsspec file systems may keep listings for the process's lifetime; others write too.
        self.fs.invalidate_cache(folder)
        listing = self.fs.ls(folder, detail=True)
        current = marker_record(self.fs.cat_file(f"{folder}/{MARKER}", **self._one_request)) or {}
        named = {keep, current.get("file")}
        for info in listing:
            name = info["name"].rstrip("/").rpartition("/")[2]
            leftover = name.startswith("part-") or target_of_temporary(name) is not None
            if leftover and name not in named and _modified(info) < started_before:
                self.fs.rm_file(info["name"])
        if self.is_s3:
            self._abort_multipart_uploads(folder, started_before)

    def _abort_multipart_uploads(self, folder: str, started_before: datetime) -> None:
        """Parts of uploads killed midway are invisible but kept (and billed) until aborted."""
        bucket, prefix, _ = self.fs.split_path(folder)
        listing = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=f"{prefix}/")
        for upload in listing.get("Uploads", []):
            if upload["Initiated"] < started_before:
                self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                log.info("aborted an unfinished upload of %s", self.fs.unstrip_protocol(f"{bucket}/{upload['Key']}"))

    def _describe(self, error: BaseException) -> str:
        return describe_storage_error(error, self._secrets)


_ORPHAN_MESSAGE = "Task exception was never retrieved"
_CONNECTION_ERRORS = frozenset({"aiohttp.ClientError", "botocore.HTTPClientError"})


def _log_orphaned_request_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Send the connection errors of tasks nobody awaits to the debug log instead of a
    traceback on stderr; any other unhandled error goes to the loop's handler as before.

    aiohttp writes a request's body in a task of its own, which fails too when the endpoint
    drops the connection, after the request's own failure; s3fs's multipart uploads leave
    sibling part uploads running when one fails. The failure that matters reaches the
    caller, and the store reports it."""
    previous = loop.get_exception_handler()
    if getattr(previous, "logs_orphaned_request_errors", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        error = context.get("exception")
        if context.get("message") == _ORPHAN_MESSAGE and error is not None and _is_connection_error(error):
            log.debug("a storage request's background task failed as well: %s", " ".join(str(error).split()))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.logs_orphaned_request_errors = True
    loop.set_exception_handler(handler)


def _is_connection_error(error: BaseException) -> bool:
    kinds = {f"{cls.__module__.partition('.')[0]}.{cls.__name__}" for cls in type(error).__mro__}
    return isinstance(error, OSError) or bool(kinds & _CONNECTION_ERRORS)


def upload_bound_seconds(size: int) -> float:
    """How long an upload of ``size`` bytes may take at most."""
    return UPLOAD_BASE_SECONDS + size / 2**20


def marker_record(content: bytes) -> dict | None:
    """A marker's metadata; None for anything unreadable, which is no proof of a result."""
    try:
        record = json.loads(content)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("file"), str) else None


def _with_defaults(defaults: dict, options: dict) -> dict:
    """``options`` over ``defaults``; an option that is a dict is merged one level deep."""
    merged = dict(defaults)
    for key, value in options.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _modified(info: dict) -> datetime:
    """When a listed file was last written; the distant past when the file system does not say."""
    value = info.get("LastModified", info.get("mtime", info.get("created")))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.min.replace(tzinfo=UTC)


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_CREDENTIAL_ERROR_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
    "AuthorizationHeaderMalformed", "InvalidClientTokenId", "UnrecognizedClientException",
})
_ACCESS_ERROR_CODES = frozenset({"AccessDenied", "403", "AllAccessDisabled", "Forbidden"})


def _error_code(error: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError, also when s3fs translated it into an OSError."""
    for candidate in (error, error.__cause__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            return response.get("Error", {}).get("Code")
    return None


def _dropped_connection(error: BaseException, kinds: set[str]) -> bool:
    """Whether the endpoint cut or reset a connection rather than being out of reach: botocore
    says 'could not connect' for both, which only the errors it wraps, or the earlier ones of
    the attempts before, tell apart."""
    if "ConnectionClosedError" in kinds:
        return True
    if "EndpointConnectionError" not in kinds:
        return False
    seen, pending = [], [error]
    while pending and len(seen) < 20:
        current = pending.pop()
        seen.append(current)
        wrapped = [getattr(current, "kwargs", {}).get("error"), getattr(current, "os_error", None),
                   current.__cause__, current.__context__]
        pending += [inner for inner in wrapped if isinstance(inner, BaseException) and inner not in seen]
    return any(isinstance(each, ConnectionResetError | BrokenPipeError) for each in seen)


def describe_storage_error(error: BaseException, secrets: Sequence[str] = ()) -> str:
    """One line saying what went wrong with the storage, with no secret in it."""
    code = _error_code(error)
    kinds = {cls.__name__ for cls in type(error).__mro__}
    message = " ".join(str(error).split()) or type(error).__name__
    if code in _CREDENTIAL_ERROR_CODES:
        text = (f"the storage rejected the credentials ({code}); check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the key and secret storage options")
    elif code in _ACCESS_ERROR_CODES or isinstance(error, PermissionError):
        text = f"access denied ({code or message}): the credentials may not use this bucket or prefix"
    elif code == "NoSuchBucket":
        text = "the bucket does not exist"
    elif kinds & {"NoCredentialsError", "PartialCredentialsError"}:
        text = (f"no usable credentials ({message}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "or AWS_PROFILE")
    elif _dropped_connection(error, kinds):
        text = f"the storage endpoint dropped or reset the connection ({message})"
    elif kinds & {"EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError"}:
        text = f"cannot reach the storage endpoint; check --s3-endpoint-url or AWS_ENDPOINT_URL ({message})"
    elif "ReadTimeoutError" in kinds:
        text = f"the storage endpoint did not answer in time ({message})"
    elif code:
        text = f"{code}: {message}"
    else:
        text = message if isinstance(error, OSError) else f"{type(error).__name__}: {message}"
    return redact(text, secrets)[:400]
