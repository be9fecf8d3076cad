"""kb serve."""
from __future__ import annotations

import errno

import click

from ..cli import Settings, kb_errors, pass_settings


def _check_port(host: str, port: int) -> None:
    """Refuse (exit 2) a port something already listens on, before announcing any URL.

    :raises InputError: the address is in use or cannot be bound.
    """
    import socket

    from ..errors import InputError
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            raise InputError(f"cannot listen on {host}:{port}: "
                             + ("the port is in use" if busy else (exc.strerror or str(exc))),
                             hint="pick another with --port" if busy else None) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. 127.0.0.1 keeps the KB to this machine; "
                   "0.0.0.0 shares it with your network.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--live/--immutable", default=True, show_default=True,
              help="--live (the default) reads through read-only connections, so what other kb "
                   "commands write meanwhile shows up safely; --immutable is faster but only "
                   "for a file nothing writes to (an immutable file being written reads torn "
                   "pages: 'database disk image is malformed').")
@pass_settings
def serve(settings: Settings, host: str, port: int, live: bool) -> None:
    """Browse the knowledge base in Datasette, read-only.

    Full-text search of works, facets by year, design and journal, the citation edge list,
    and ready-made queries: source trials of a pooled study, the evidence table, unresolved
    references, most cited works, works citing a DOI. Listens on 127.0.0.1 (this machine
    only) unless --host says otherwise.
    """
    import asyncio

    import uvicorn

    from ..serve import DB_NAME, is_loopback, make_datasette, schema_version
    from ..store import latest_version

    with kb_errors(settings):
        version = schema_version(settings.db_path)
        _check_port(host, port)
        ds = make_datasette(settings.db_path, live=live, loopback_only=is_loopback(host))
    if version < latest_version():
        settings.say(f"warning: {settings.db_path} is at schema {version} of {latest_version()}; "
                     "some views and queries need `kb init` to upgrade it")
    if not is_loopback(host):
        settings.say(f"warning: listening on {host}: anyone who can reach this machine on port "
                     f"{port} can read the KB (it stays read-only)")
    settings.say(f"Serving {settings.db_path} read-only at http://{host}:{port}/{DB_NAME} "
                 "(Ctrl+C to stop)")
    asyncio.run(ds.invoke_startup())
    uvicorn.run(ds.app(), host=host, port=port, log_level="warning", lifespan="on")
