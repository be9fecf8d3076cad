"""The kb error family: every failure a user can meet is one of these."""
from __future__ import annotations


class KBError(Exception):
    """A runtime failure with a message meant for the user (exit status 1)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = self.args[0] if self.args else ""
        return f"{text}\nHint: {self.hint}" if self.hint else text


class InputError(KBError):
    """Bad input from the user: an identifier, a file, a query (exit status 2)."""

    exit_code = 2


class DatabaseError(InputError):
    """The database file cannot be used: not SQLite, or from a newer kb."""


class FetchError(KBError):
    """A remote service failed after retries, or answered something unusable."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.status = status


class NotFoundError(FetchError):
    """The service says the identifier does not exist."""


class QuotaError(FetchError):
    """A rate limit or quota that retrying soon will not fix."""


class OfflineError(FetchError):
    """KB_OFFLINE is set and the answer is not in the cache."""


class NoNetworkError(FetchError):
    """A host cannot be reached at all (name lookup failed, connection refused): not worth
    retrying, and every later request to that host in the run fails at once."""


class ParseError(InputError):
    """A file or response is not in the format it claims to be."""
