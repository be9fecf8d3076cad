"""The one clock every layer stamps rows and records with."""
from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["now"]


def now() -> str:
    """The current UTC time, ISO 8601 to the millisecond (fine enough for "changed since")."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
