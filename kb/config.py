"""Run-time settings from the environment: base URLs, identity, cache, offline mode.

Read once per command into a frozen :class:`Config` that is passed down; nothing global.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError

__all__ = ["Config", "load_config", "BASE_URLS"]

#: service -> (environment variable, production root)
BASE_URLS: dict[str, tuple[str, str]] = {
    "crossref": ("KB_CROSSREF_URL", "https://api.crossref.org"),
    "datacite": ("KB_DATACITE_URL", "https://api.datacite.org"),
    "doi": ("KB_DOI_URL", "https://doi.org"),
    "eutils": ("KB_EUTILS_URL", "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"),
    "idconv": ("KB_IDCONV_URL", "https://pmc.ncbi.nlm.nih.gov/tools/idconv/api/v1/articles"),
    "openalex": ("KB_OPENALEX_URL", "https://api.openalex.org"),
    "opencitations": ("KB_OPENCITATIONS_URL", "https://api.opencitations.net/index/v2"),
    "ctgov": ("KB_CTGOV_URL", "https://clinicaltrials.gov/api/v2"),
}


#: Default caps on a decoded answer (bytes). An answer is parsed whole, and a hostile one
#: (``[{},{},…]``, ``<a/><a/>…``) takes up to ~30 times its size in memory: the caps keep that
#: under 500 MB while leaving room for the largest real answers (a Crossref batch of 40 works
#: with long reference lists, a ClinicalTrials.gov page with results). PubMed's efetch is
#: parsed as a stream; its other answers are refused over 8 MB before parsing.
MAX_BYTES: dict[str | None, int] = {
    None: 16 * 2**20, "crossref": 12 * 2**20, "datacite": 12 * 2**20, "doi": 8 * 2**20,
    "eutils": 48 * 2**20, "idconv": 8 * 2**20, "openalex": 12 * 2**20,
    "opencitations": 12 * 2**20, "ctgov": 32 * 2**20,
}


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _default_cache_dir() -> Path:
    from platformdirs import user_cache_dir
    return Path(user_cache_dir("kb", appauthor=False))


@dataclass(frozen=True)
class Config:
    """Everything a fetch needs to know. Secrets are kept out of ``repr``."""

    base_urls: dict[str, str] = field(default_factory=lambda: {k: v[1] for k, v in BASE_URLS.items()})
    mailto: str | None = None
    ncbi_api_key: str | None = field(default=None, repr=False)
    openalex_api_key: str | None = field(default=None, repr=False)
    cache_dir: Path | None = None
    use_cache: bool = True
    refresh: bool = False
    offline: bool = False
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 0.5
    max_retry_wait: float = 60.0
    #: Seconds one request may take in all, however slowly its body arrives.
    deadline: float = 120.0
    #: Largest decoded answer accepted, in bytes, per service (``None``: other hosts).
    max_bytes: dict[str | None, int] = field(default_factory=lambda: dict(MAX_BYTES))

    def url(self, service: str, path: str = "") -> str:
        """The base URL of ``service`` joined with ``path``."""
        root = self.base_urls[service].rstrip("/")
        return f"{root}/{path.lstrip('/')}" if path else root

    def with_options(self, **changes: object) -> "Config":
        """A copy with some settings changed (used for --no-cache, --refresh)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Build a :class:`Config` from environment variables (``os.environ`` by default).

    ``KB_CROSSREF_URL`` … ``KB_CTGOV_URL`` override the services' roots; ``KB_MAILTO`` is the
    contact sent to Crossref, NCBI and OpenAlex; ``NCBI_API_KEY`` and ``OPENALEX_API_KEY`` raise
    rate limits; ``KB_CACHE_DIR`` moves the HTTP cache; ``KB_OFFLINE=1`` answers from the cache
    only; ``KB_TIMEOUT`` and ``KB_RETRIES`` tune the client; ``KB_DEADLINE`` (seconds) bounds
    one request in all; ``KB_MAX_RESPONSE_MB`` caps every decoded answer (``50``) or some
    services' (``eutils=300,crossref=20``).
    """
    env = os.environ if env is None else env
    base_urls = {name: env.get(var) or default for name, (var, default) in BASE_URLS.items()}
    cache_dir = env.get("KB_CACHE_DIR")
    return Config(
        base_urls=base_urls,
        mailto=env.get("KB_MAILTO") or None,
        ncbi_api_key=env.get("NCBI_API_KEY") or None,
        openalex_api_key=env.get("OPENALEX_API_KEY") or None,
        cache_dir=Path(cache_dir) if cache_dir else _default_cache_dir(),
        use_cache=not _flag(env.get("KB_NO_CACHE")),
        offline=_flag(env.get("KB_OFFLINE")),
        timeout=_number(env, "KB_TIMEOUT", 30.0, float),
        retries=int(_number(env, "KB_RETRIES", 5, int)),
        deadline=_number(env, "KB_DEADLINE", 120.0, float),
        max_bytes=_max_bytes(env.get("KB_MAX_RESPONSE_MB")),
    )


def _max_bytes(value: str | None) -> dict[str | None, int]:
    """The caps of :data:`MAX_BYTES` changed by ``KB_MAX_RESPONSE_MB``: one figure for every
    service, or ``service=MB`` pairs separated by commas.

    >>> _max_bytes("eutils=300")["eutils"] == 300 * 2**20, _max_bytes("1")["crossref"]
    (True, 1048576)

    :raises InputError: the value is neither.
    """
    caps = dict(MAX_BYTES)
    if not value:
        return caps
    try:
        if "=" not in value:
            return {name: int(float(value) * 2**20) for name in caps}
        for pair in value.split(","):
            name, _, figure = pair.partition("=")
            if name.strip() not in caps:
                raise ValueError(name)
            caps[name.strip()] = int(float(figure) * 2**20)
    except ValueError:
        raise InputError(f"KB_MAX_RESPONSE_MB must be a number of MB or service=MB pairs "
                         f"(services: {', '.join(n for n in caps if n)}), not {value!r}"
                         ) from None
    return caps


def _number(env: Mapping[str, str], name: str, default: float, kind: type) -> float:
    """A positive number from ``env[name]``, or ``default`` when unset.

    :raises InputError: the variable is set to something else.
    """
    value = env.get(name)
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        number = -1
    if number < 0:
        raise InputError(f"{name} must be a non-negative number, not {value!r}")
    return number
