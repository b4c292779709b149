"""Bearer tokens for the HTTP API: created once, stored as sha256, revocable.

    $ pagekit token create ci-runner      # prints the token once; only its hash is kept
    $ pagekit token list
    $ pagekit token revoke ci-runner

A token is ``secrets.token_urlsafe(32)`` (256 random bits), so a plain sha256 is enough:
there is nothing to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import click
from sqlalchemy import select

from .config import Settings
from .errors import NotFound, PagekitError
from .store import ApiToken, Store, utcnow

NAME_MAX = 100  # the ApiToken.name column


def hash_token(token: str) -> str:
    """The stored form of a token: sha256 hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(store: Store, name: str) -> str:
    """Create a token called ``name`` and return it; it cannot be shown again."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise PagekitError(f"a token needs a name of 1 to {NAME_MAX} characters")
    token = secrets.token_urlsafe(32)
    with store.write() as s:
        existing = s.scalar(select(ApiToken).where(ApiToken.name == name))
        if existing is not None:
            state = "revoked" if existing.revoked_at else "active"
            raise PagekitError(
                f"a token named {name!r} already exists ({state}); pick another name"
            )
        s.add(ApiToken(name=name, token_hash=hash_token(token)))
    return token


def verify(store: Store, token: str | None) -> str | None:
    """The name of the active token ``token``, or None if it is unknown or revoked."""
    if not token:
        return None
    digest = hash_token(token)
    with store.read() as s:
        row = s.scalar(
            select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
        )
    # The lookup is by hash, so its timing says nothing about the token; compare anyway
    # in constant time so a future change to the lookup cannot open a timing oracle.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row.name


def list_tokens(store: Store) -> list[dict[str, Any]]:
    """Every token's name, creation and revocation time (never the token or its hash)."""
    with store.read() as s:
        rows = s.scalars(select(ApiToken).order_by(ApiToken.id)).all()
    return [{"name": t.name, "created_at": t.created_at, "revoked_at": t.revoked_at} for t in rows]


def revoke(store: Store, name: str) -> bool:
    """Revoke the token called ``name``; False if it was already revoked."""
    with store.write() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            raise NotFound(f"no such token: {name!r}; list tokens with `pagekit token list`")
        if row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        return True


def any_active(store: Store) -> bool:
    """Whether at least one unrevoked token exists (``pagekit serve`` says so if not)."""
    with store.read() as s:
        return s.scalar(select(ApiToken.id).where(ApiToken.revoked_at.is_(None))) is not None


# -- the `pagekit token` command ------------------------------------------------------------


def _store(ctx: click.Context) -> Store:
    # Only the database: managing tokens needs no Redis and no workers.
    home = (ctx.find_root().obj or {}).get("home")
    return Store(Settings.from_env(home=home).db_url)


@click.group("token")
def token_group() -> None:
    """Create, list and revoke bearer tokens for `pagekit serve`."""


@token_group.command("create")
@click.argument("name")
@click.pass_context
def token_create(ctx: click.Context, name: str) -> None:
    """Create a token called NAME and print it (shown only this once)."""
    token = create(_store(ctx), name)
    click.echo(token)
    click.echo(
        f"token {name!r} created; it is shown only once. Send it as "
        "`Authorization: Bearer <token>`.",
        err=True,
    )


@token_group.command("list")
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """List tokens: name, created, revoked."""
    rows = list_tokens(_store(ctx))
    if not rows:
        click.echo("no tokens yet: create one with `pagekit token create NAME`")
        return
    for t in rows:
        state = f"revoked {t['revoked_at']:%Y-%m-%d %H:%M}" if t["revoked_at"] else "active"
        click.echo(f"{t['name']:<30} created {t['created_at']:%Y-%m-%d %H:%M}  {state}")


@token_group.command("revoke")
@click.argument("name")
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke the token called NAME; requests carrying it get 401 from now on."""
    if revoke(_store(ctx), name):
        click.echo(f"token {name!r} revoked")
    else:
        click.echo(f"token {name!r} was already revoked")
