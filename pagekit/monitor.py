"""Monitoring with Flower: how ``pagekit flower`` runs it against pagekit's Celery app.

Flower listens on loopback only and always asks for a password (basic auth): it shows
task arguments and can shut workers down, so it must never be open. The credentials are
``PAGEKIT_FLOWER_USER`` / ``PAGEKIT_FLOWER_PASSWORD``, or a password generated once and
kept in ``<home>/runtime/flower.json`` (mode 600). They reach Flower through its
environment (``FLOWER_BASIC_AUTH``), never its command line, where ``ps`` would show them.
To reach it from another machine, tunnel: ``ssh -L 5555:127.0.0.1:5555 host``.

Flower serves ``/metrics`` (Prometheus: task names, worker names, counts) without asking
for the password; pagekit runs it through :func:`main`, which puts that page behind the
same basic auth as the rest. Only ``/healthcheck`` ("OK") stays open.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from .config import Settings
from .errors import ConfigError, RuntimeUnavailable

CREDENTIALS_FILE = "flower.json"
# Where a running `pagekit flower` says where it serves (pid, start time, URL), so the
# dashboard links to the Flower that runs, on whatever port, and to none when none does.
RUNNING_FILE = "flower-running.json"
ADDRESS = "127.0.0.1"


def flower_url(settings: Settings) -> str:
    """Where ``pagekit flower`` serves with these settings."""
    return f"http://{ADDRESS}:{settings.flower_port}/"


def record_running(settings: Settings) -> Path:
    """Record this process (about to become Flower) as the running Flower of the home."""
    import psutil

    path = settings.runtime_dir / RUNNING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    record = {"pid": pid, "started": psutil.Process(pid).create_time(), "url": flower_url(settings)}
    tmp = path.with_suffix(f".{pid}.tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)  # readers never see half a file
    return path


def running_url(settings: Settings) -> str | None:
    """The URL of the Flower running for this home, or None (never started, or exited:
    the recorded process is gone, or its pid now belongs to another program)."""
    from .runtime import pid_alive

    try:
        record = json.loads((settings.runtime_dir / RUNNING_FILE).read_text())
        alive = pid_alive(int(record["pid"]), record.get("started"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(record["url"]) if alive else None


def forget_running(settings: Settings) -> None:
    """Remove the record if it names this process (Flower exiting)."""
    path = settings.runtime_dir / RUNNING_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def credentials(settings: Settings) -> tuple[str, str, Path | None]:
    """``(user, password, file)``: from settings, else generated once and stored in
    ``file`` (``None`` when the password comes from settings)."""
    user = settings.flower_user
    if settings.flower_password:
        password, path = settings.flower_password, None
    else:
        path = settings.runtime_dir / CREDENTIALS_FILE
        password = _stored_password(path)
    # Flower reads FLOWER_BASIC_AUTH as "user:password[,user:password...]".
    if not user or ":" in user or "," in user or "," in password:
        raise ConfigError(
            "the Flower user must be non-empty without ':' or ',', and the password without "
            "','; change PAGEKIT_FLOWER_USER / PAGEKIT_FLOWER_PASSWORD"
        )
    return user, password, path


def _stored_password(path: Path) -> str:
    try:
        return str(json.loads(path.read_text())["password"])
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}); delete it to get a new password") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another `pagekit flower` just wrote it: use that one
        return _stored_password(path)
    with os.fdopen(fd, "w") as fh:
        json.dump({"password": password}, fh)
    return password


def flower_command_line(port: int) -> list[str]:
    """``celery -A pagekit.celery_app flower ...``, run by :func:`main`."""
    return [
        sys.executable, "-m", "pagekit.monitor", "-A", "pagekit.celery_app", "flower",
        f"--address={ADDRESS}", f"--port={port}",
    ]  # fmt: skip


def protect_metrics() -> None:
    """Make Flower's ``/metrics`` ask for the password like every other page.

    Its handler lacks the ``@web.authenticated`` the others carry; Flower's
    ``get_current_user`` answers 401 to a request without the basic-auth credentials.
    """
    from flower.views.monitor import Metrics
    from tornado import web

    if not getattr(Metrics.get, "pagekit_protected", False):
        protected = web.authenticated(Metrics.get)
        protected.pagekit_protected = True  # type: ignore[attr-defined]
        Metrics.get = protected  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """``python -m pagekit.monitor ARGS``: the ``celery ARGS`` command, with Flower's
    ``/metrics`` protected (see :func:`protect_metrics`)."""
    protect_metrics()
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *(sys.argv[1:] if argv is None else argv)]
    try:
        sys.exit(celery_main())
    finally:  # Ctrl-C or SIGTERM (Flower exits through sys.exit): no longer running
        forget_running(Settings.from_env())


def flower_env(settings: Settings, broker_url: str, user: str, password: str) -> dict[str, str]:
    from .runtime import worker_env

    env = worker_env(settings, broker_url)  # PAGEKIT_* plus PAGEKIT_BROKER_URL
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    env["FLOWER_BASIC_AUTH"] = f"{user}:{password}"
    return env


def watched_broker(settings: Settings) -> str:
    """The broker Flower watches: ``PAGEKIT_BROKER_URL``, else the running runtime's."""
    if settings.broker_url:
        return settings.broker_url
    from .runtime import running

    state = running(settings)
    if state is None:
        raise RuntimeUnavailable(
            f"the embedded runtime in {settings.home_abs} is not running, so there is nothing "
            "to monitor; start it with `pagekit up` (or set PAGEKIT_BROKER_URL)"
        )
    return str(state["broker_url"])


if __name__ == "__main__":
    main()
