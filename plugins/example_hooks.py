"""Example plugin: keep recent state changes, serve them over HTTP, print them from the CLI.

It shows the three hooks most plugins beyond check types need:

- ``probed_check_state_changed`` (an async notification): remembers each transition, such as
  ``payments-api: ok -> fail (timeout)``, in a bounded list;
- ``probed_register_routes``: serves that list as JSON at ``GET /example/transitions``
  (newest first; ``?check=NAME`` filters);
- ``probed_register_commands``: adds ``probed transitions [--url URL] [--check NAME]``, which
  reads the route of a running daemon and prints one line per transition.

Try it::

    probed --plugins-dir plugins &
    PROBED_PLUGINS_DIR=plugins probed transitions --url http://127.0.0.1:9333

(Plugin commands are found through ``PROBED_PLUGINS_DIR``, read before the command line is
parsed.)

A one-file plugin is a module, so its state lives in module globals: probed loads the file once
per daemon. Keep notification hooks cheap and never block in them.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import click
from aiohttp import web

from probed import CheckSpec, Result, Status, hookimpl

if TYPE_CHECKING:
    from probed.state import StateStore

__version__ = "1.0.0"

ROUTE: Final = "/example/transitions"
KEEP: Final = 100

_recent: deque[dict[str, Any]] = deque(maxlen=KEEP)


@hookimpl
async def probed_check_state_changed(
    spec: CheckSpec, old: Status, new: Status, result: Result
) -> None:
    """Remember the transition (the oldest is dropped beyond :data:`KEEP`)."""
    _recent.append(
        {
            "check": spec.name,
            "type": spec.type,
            "old": old.label,
            "new": new.label,
            "reason": result.reason,
            "message": result.message,
            "timestamp": result.timestamp or time.time(),
        }
    )


async def _transitions(request: web.Request) -> web.Response:
    check = request.query.get("check")
    items = [t for t in reversed(_recent) if check is None or t["check"] == check]
    return web.json_response(items)


@hookimpl
def probed_register_routes(states: StateStore) -> list[web.RouteDef]:
    """Serve the remembered transitions at :data:`ROUTE`."""
    return [web.get(ROUTE, _transitions)]


def format_transition(item: dict[str, Any]) -> str:
    """One line: ``2024-05-01T02:00:00Z payments-api: ok -> fail (timeout) no answer...``."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item["timestamp"]))
    reason = f" ({item['reason']})" if item["reason"] else ""
    return f"{when} {item['check']}: {item['old']} -> {item['new']}{reason} {item['message']}"


@click.command("transitions")
@click.option(
    "--url",
    default="http://127.0.0.1:9333",
    show_default=True,
    envvar="PROBED_URL",
    help="Base URL of a running probed.",
)
@click.option("--check", "check", default=None, help="Only this check's transitions.")
def transitions_command(url: str, check: str | None) -> None:
    """Print the recent state changes a running probed has seen (newest first)."""
    query = f"?{urllib.parse.urlencode({'check': check})}" if check else ""
    try:
        # A CLI command is a plain blocking program: no event loop to protect here.
        with urllib.request.urlopen(f"{url.rstrip('/')}{ROUTE}{query}", timeout=10) as response:
            items = json.load(response)
    except urllib.error.HTTPError as exc:
        raise click.ClickException(
            f"{url} answered {exc.code} for {ROUTE}: is the example_hooks plugin loaded there "
            "(--plugins-dir)?"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot reach probed at {url}: {reason}") from None
    if not items:
        click.echo("no state changes yet")
    for item in items:
        click.echo(format_transition(item))


@hookimpl
def probed_register_commands(cli: click.Group) -> None:
    """Add ``probed transitions``."""
    cli.add_command(transitions_command)
