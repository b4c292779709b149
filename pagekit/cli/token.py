"""``pagekit token create | list | revoke``: bearer tokens for ``pagekit serve``.

Only the database is opened: managing tokens needs no Redis and no workers.
"""

from __future__ import annotations

import click

from .context import CliContext, pass_cli
from .table import format_table


@click.group()
def token() -> None:
    """Create, list and revoke bearer tokens for `pagekit serve`."""


@token.command("create")
@click.argument("name")
@pass_cli
def token_create(cli: CliContext, name: str) -> None:
    """Create a token called NAME and print it (shown only this once)."""
    from .. import tokens

    click.echo(tokens.create(cli.store(), name))
    click.echo(
        f"token {name!r} created; it is shown only once. Send it as "
        "`Authorization: Bearer <token>`.",
        err=True,
    )


@token.command("list")
@pass_cli
def token_list(cli: CliContext) -> None:
    """List tokens: name, created, revoked."""
    from .. import tokens

    rows = tokens.list_tokens(cli.store())
    if not rows:
        click.echo("no tokens yet: create one with `pagekit token create NAME`")
        return
    for t in rows:
        t["state"] = "revoked" if t["revoked_at"] else "active"
    columns = ["name", "state", "created_at", "revoked_at"]
    click.echo(
        format_table(rows, columns, headers={"created_at": "created", "revoked_at": "revoked"})
    )


@token.command("revoke")
@click.argument("name")
@pass_cli
def token_revoke(cli: CliContext, name: str) -> None:
    """Revoke the token called NAME; requests carrying it get 401 from now on."""
    from .. import tokens

    if tokens.revoke(cli.store(), name):
        click.echo(f"token {name!r} revoked")
    else:
        click.echo(f"token {name!r} was already revoked")
