"""The base of every error wikitop raises on purpose, so that a caller can catch them all."""

from wikitop.redact import redact


class WikitopError(Exception):
    """An expected failure: bad input, an hour not published, storage refusing a write...
    The message is one line, fit to show to a user, and shows no secret: it is redacted
    where it becomes text, so that no printer, log or record can forget to."""

    def __str__(self) -> str:
        return redact(super().__str__())
