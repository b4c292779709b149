"""The ``pagekit`` group: commands imported when they run, errors as one line.

A command's module is imported only when that command (or its help) is asked for, so
``pagekit --help`` needs nothing but click, and a base install without the optional
extras runs every command that does not need them. Whatever goes wrong, the user reads
one line on stderr, never a traceback:

- nothing to do (:class:`~pagekit.errors.NothingToProcess`): ``nothing to process:
  <why>``, exit code 0 (see ``EXIT_CODES``);
- a :class:`~pagekit.errors.PagekitError`: ``error: <message>``, its ``exit_code``;
- a missing optional dependency: which extra to install, exit code 1;
- anything else: ``error: internal error: ...``, exit code 1 (``PAGEKIT_DEBUG=1``
  re-raises it, traceback and all);
- Ctrl-C: nothing (a command waiting for a job says how to reach it), exit code 130.
"""

from __future__ import annotations

import importlib
from typing import Any, NoReturn

import click

from ..errors import NothingToProcess, PagekitError
from .context import CliContext, debug_requested

# The top-level module of each optional dependency -> the extra that installs it
# (pyproject.toml's [project.optional-dependencies]).
EXTRAS = {
    "fastapi": "api",
    "fastapi_offline": "api",
    "uvicorn": "api",
    "multipart": "api",
    "python_multipart": "api",
    "starlette": "api",
    "pydantic": "api",
    "voila": "notebook",
    "jupyterlab": "notebook",
    "ipydatagrid": "notebook",
    "ipywidgets": "notebook",
    "ipykernel": "notebook",
    "nbclient": "notebook",
    "nbconvert": "notebook",
    "nbformat": "notebook",
    "papermill": "notebook",
    "jupyter_client": "notebook",
    "traitlets": "notebook",
    "flower": "monitor",
    "psycopg": "postgres",
}

INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

# The exit-code rule, shown by `pagekit --help` (README's "A tour of the CLI" says the same).
# "\b" keeps click from re-wrapping the list.
EXIT_CODES = """\b
Exit codes:
  0    done, or nothing to do (one line says so: "nothing to process: ...")
  1    any other error (the line says how to fix it); a failed check
       (doctor; status while the runtime is down)
  2    a bad argument or setting
  3    a service is down (Redis, workers, the database)
  4    not found (project, page, task)
  5    a file was refused (the others were added)
  6    --timeout passed before the job finished (the job goes on)
  130  Ctrl-C (a job being waited for goes on)
"""


def missing_extra(exc: ImportError) -> str | None:
    """The extra that provides the module ``exc`` could not import, if it is optional."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    return EXTRAS.get(exc.name.split(".")[0])


def one_line(text: str) -> str:
    return " ".join(text.split())


class LazyGroup(click.Group):
    """A group whose commands are ``"module:attribute"`` names, imported on demand
    (click's "Lazily Loading Subcommands")."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module, _, attr = self.lazy_commands[cmd_name].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors, ctx.exit(), --help
        except KeyboardInterrupt:
            ctx.exit(INTERRUPTED)
        except NothingToProcess as exc:  # nothing to do is not a failure
            click.echo(f"nothing to process: {one_line(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except PagekitError as exc:
            fail(ctx, str(exc), exc.exit_code)
        except ImportError as exc:
            extra = missing_extra(exc)
            if extra is None:
                unexpected(ctx, exc)
            else:
                what = f"pagekit {ctx.invoked_subcommand or ''}".strip()
                fail(ctx, f"{what} needs the {extra} extra: pip install 'pagekit[{extra}]'", 1)
        except Exception as exc:
            unexpected(ctx, exc)
        finally:
            if isinstance(ctx.obj, CliContext):
                ctx.obj.close()


def fail(ctx: click.Context, message: str, exit_code: int) -> NoReturn:
    click.secho(f"error: {one_line(message)}", fg="red", err=True)
    ctx.exit(exit_code)


def unexpected(ctx: click.Context, exc: BaseException) -> NoReturn:
    debug = ctx.obj.debug if isinstance(ctx.obj, CliContext) else debug_requested()
    if debug:
        raise exc
    fail(
        ctx,
        f"internal error: {type(exc).__name__}: {exc} (set PAGEKIT_DEBUG=1 for the traceback)",
        1,
    )
