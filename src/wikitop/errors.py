"""The base of every error wikitop raises on purpose, so that a caller can catch them all."""


class WikitopError(Exception):
    """An expected failure: bad input, an hour not published, storage refusing a write...
    The message is one line, fit to show to a user."""
