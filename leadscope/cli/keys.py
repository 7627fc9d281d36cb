"""`leadscope keys create|revoke|list`: API keys (stored hashed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscope.cli.common import console, fail, settings

keys_app = typer.Typer(help="API keys: create, revoke, list (stored hashed).", no_args_is_help=True)


def _store(*, create: bool = False):  # noqa: ANN202 - serving.keys.KeyStore, imported lazily
    """The key table; only `create` may start a new database (listing in the wrong folder must not make one)."""
    from serving.keys import KeyStore

    url = settings().database_url
    path = url.removeprefix("sqlite:///")
    if not create and url.startswith("sqlite:///") and not Path(path).exists():
        fail(f"no key database at {path}: run this where `leadscope run` ran, or set LEADSCOPE_HOME")
    return KeyStore(url)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. 'crm-prod'.")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="score, audiences, conversions or admin (repeat for several).")
    ],
    rate: Annotated[str | None, typer.Option(help="Rate limit of this key, e.g. '100/second'.")] = None,
) -> None:
    """Create a key. It is printed once, on stdout; only its SHA-256 is stored."""
    try:
        token, key = _store(create=True).create(name, scope, rate)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"created key {key.key_id} ({key.name}; scopes {', '.join(sorted(key.scopes))}); it is shown once:")
    print(token)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (the part after 'lsk_').")]) -> None:
    """Revoke a key; servers refuse it within key_cache_seconds, and its console sessions end now."""
    from serving.console.sessions import SessionStore

    s = settings()
    if not _store().revoke(key_id):
        fail(f"no active key with id {key_id}")
    ended = SessionStore(s.database_url, s.console_session_seconds).end_for_key(key_id)
    console.print(f"revoked key {key_id}" + (f"; {ended} console session(s) ended" if ended else ""))


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, names, scopes and state (never the keys themselves)."""
    for k in _store().list():
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.key_id}\t{k.name}\t{','.join(sorted(k.scopes))}\t{k.rate_limit or 'default'}\t{state}")
