"""Keeping secrets out of what wikitop prints, logs and writes.

A URL may carry credentials (``https://user:password@host``, ``?token=...``, a presigned
``X-Amz-Signature``), and storage options or the environment may hold secret values.
Every message, log record, cache record and marker goes through ``redact`` before it
leaves the process.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
# Shorter values are not replaced wherever they appear: they would mask ordinary words.
MIN_SECRET_LENGTH = 6

_SECRET_NAME = re.compile(r"(?i)secret|token|password|passwd|account_key|connection_string|credential")
_SECRET_PARAMETER_NAME = (
    r"x-amz-[\w-]+|[\w.-]*(?:token|secret|passw(?:or)?d|signature|credential|api_?key|access_?key)[\w.-]*"
    r"|sig|key|auth"
)
_SECRET_PARAMETER = re.compile(rf"(?i)(?<![\w-])((?:{_SECRET_PARAMETER_NAME})=)[^&\s\"'<>]+")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")

_known_secrets: set[str] = set()


def remember_secrets(values: Iterable[str]) -> None:
    """Values to mask wherever they appear from now on, in this process."""
    _known_secrets.update(value for value in values if len(value) >= MIN_SECRET_LENGTH)


def secrets_in_url(url: str) -> list[str]:
    """The password of a URL's userinfo and the values of its secret query parameters."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    values = [password, unquote(password)] if password else []
    name = re.compile(rf"(?i)(?:{_SECRET_PARAMETER_NAME})")
    values += [value for key, value in parse_qsl(parts.query) if name.fullmatch(key)]
    return values


def secret_values(options: dict) -> list[str]:
    """Values that must never be shown: secrets in ``options`` (nested) and in the environment."""
    values = [value for name, value in os.environ.items() if _SECRET_NAME.search(name)]
    pending = [options]
    while pending:
        for name, value in pending.pop().items():
            if isinstance(value, dict):
                pending.append(value)
            elif isinstance(value, str) and _SECRET_NAME.search(str(name)):
                values.append(value)
    return sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def without_userinfo(url: str) -> str:
    return _USERINFO.sub(f"{MASK}@", url)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without URL userinfo, secret query parameters, the given secrets, the
    remembered ones and those of the environment."""
    known = {*secrets, *_known_secrets, *secret_values({})}
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return without_userinfo(_SECRET_PARAMETER.sub(rf"\1{MASK}", text))


class RedactingFilter(logging.Filter):
    """Redacts a log record's message and traceback before a handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
