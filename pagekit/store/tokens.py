"""The queries behind API tokens (``pagekit.tokens`` holds the rules and messages)."""

from __future__ import annotations

from sqlalchemy import select

from . import ApiToken, Store, utcnow


def insert(store: Store, name: str, token_hash: str) -> ApiToken | None:
    """Store a token; if one called ``name`` exists, add nothing and return that one."""
    with store.write() as s:
        existing = s.scalar(select(ApiToken).where(ApiToken.name == name))
        if existing is None:
            s.add(ApiToken(name=name, token_hash=token_hash))
        return existing


def active_by_hash(store: Store, token_hash: str) -> ApiToken | None:
    """The unrevoked token with this hash, if any."""
    with store.read() as s:
        return s.scalar(
            select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )


def all_tokens(store: Store) -> list[ApiToken]:
    """Every token, oldest first."""
    with store.read() as s:
        return list(s.scalars(select(ApiToken).order_by(ApiToken.id)))


def mark_revoked(store: Store, name: str) -> bool | None:
    """Revoke the token called ``name``: True if done now, False if it already was, None
    if there is no such token."""
    with store.write() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            return None
        if row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        return True


def any_active(store: Store) -> bool:
    """Whether at least one unrevoked token exists."""
    with store.read() as s:
        return s.scalar(select(ApiToken.id).where(ApiToken.revoked_at.is_(None))) is not None
