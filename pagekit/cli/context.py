"""What every ``pagekit`` command shares: the data directory, settings, one client.

Nothing is built before a command asks for it: ``pagekit --help`` reads no setting and
imports neither Celery nor SQLAlchemy, and commands that only read (``pagekit pages``,
``export``, ``task status``, ``token list`` ...) open the database and never start Redis.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..config import Settings

if TYPE_CHECKING:
    from ..client import Client
    from ..store import Store


def debug_requested() -> bool:
    """``PAGEKIT_DEBUG=1``: show the traceback of an unexpected error."""
    return os.environ.get("PAGEKIT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


@dataclass
class CliContext:
    """``ctx.obj`` of every command; ``debug`` is the output mode for errors."""

    home: Path | None = None
    debug: bool = field(default_factory=debug_requested)
    _settings: Settings | None = field(default=None, repr=False)
    _client: Client | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Settings from ``--home`` and ``PAGEKIT_*``, read on first use."""
        if self._settings is None:
            self._settings = Settings.from_env(home=self.home)
        return self._settings

    def client(self, *, start: bool = True) -> Client:
        """The command's :class:`~pagekit.Client`. It opens only the database; the first
        call that needs the broker starts the embedded runtime, or with ``start=False``
        (commands that only read) fails with "start it with `pagekit up`"."""
        if self._client is None:
            from ..client import Client

            self._client = Client(settings=self.settings, start=start)
        return self._client

    def store(self) -> Store:
        """The database alone, for commands that need no broker (``pagekit token``)."""
        if self._client is not None:
            return self._client.store
        if self._store is None:
            from ..store import Store

            s = self.settings
            self._store = Store(s.db_url, busy_timeout=s.db_busy_timeout)
        return self._store

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @staticmethod
    def echo_json(data: Any) -> None:
        click.echo(json.dumps(data, indent=2, default=str))


pass_cli = click.make_pass_decorator(CliContext, ensure=True)
