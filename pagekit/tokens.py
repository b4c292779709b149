"""Bearer tokens for the HTTP API: created once, stored as sha256, revocable.

    $ pagekit token create ci-runner      # prints the token once; only its hash is kept
    $ pagekit token list
    $ pagekit token revoke ci-runner

A token is ``secrets.token_urlsafe(32)`` (256 random bits), so a plain sha256 is enough:
there is nothing to brute-force that a slow password hash would protect. The queries are
in :mod:`pagekit.store.tokens`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from .errors import NotFound, PagekitError
from .store import Store
from .store import tokens as queries

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
    existing = queries.insert(store, name, hash_token(token))
    if existing is not None:
        state = "revoked" if existing.revoked_at else "active"
        raise PagekitError(f"a token named {name!r} already exists ({state}); pick another name")
    return token


def verify(store: Store, token: str | None) -> str | None:
    """The name of the active token ``token``, or None if it is unknown or revoked."""
    if not token:
        return None
    digest = hash_token(token)
    row = queries.active_by_hash(store, digest)
    # The lookup is by hash, so its timing says nothing about the token; compare anyway
    # in constant time so a future change to the lookup cannot open a timing oracle.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row.name


def list_tokens(store: Store) -> list[dict[str, Any]]:
    """Every token's name, creation and revocation time (never the token or its hash)."""
    return [
        {"name": t.name, "created_at": t.created_at, "revoked_at": t.revoked_at}
        for t in queries.all_tokens(store)
    ]


def revoke(store: Store, name: str) -> bool:
    """Revoke the token called ``name``; False if it was already revoked."""
    done = queries.mark_revoked(store, name)
    if done is None:
        raise NotFound(f"no such token: {name!r}; list tokens with `pagekit token list`")
    return done


def any_active(store: Store) -> bool:
    """Whether at least one unrevoked token exists (``pagekit serve`` says so if not)."""
    return queries.any_active(store)
