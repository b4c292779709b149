"""What ``pagekit dashboard`` serves: the Voila web app (upload, process, live progress).

The notebook it serves ships inside the package (``pagekit/dashboards/pagekit.ipynb``;
the repository's ``dashboards/pagekit.ipynb`` is a link to it), so an installed pagekit
finds it. Voila runs on loopback without a token by default: only this machine's users
can reach it; ``--token`` asks for one there too. ``--host`` on another interface
requires a token (one is generated when ``--token`` is not given a value).

Every visit starts a kernel (about 200 MB) that runs the dashboard for that page. It is
shut down:

- when the page is closed: Voila's page sends a shutdown beacon on ``beforeunload``
  (Voila itself refuses it for want of an XSRF cookie, voila#1458; :func:`voila_class`
  accepts it);
- failing that (a crashed browser, a lost network), once no browser has been connected
  to it for ``cull_disconnected`` seconds. The widgets' pollers keep a kernel "active"
  for Jupyter's idle culler while a job runs, so a kernel nobody watches is shut down
  however active it looks;
- after ``cull_idle`` seconds without any activity and without a browser (Jupyter's own
  idle culler, a backstop).

At most ``max_kernels`` kernels run at once: one visit more gets HTTP 503.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from .config import Settings

# `pagekit dashboard --token` without a value: generate one.
GENERATE = "generate"


@dataclass(frozen=True)
class KernelPolicy:
    """When the dashboard's kernels are shut down, and how many may run.

    Each is a ``pagekit dashboard`` option and a ``PAGEKIT_DASHBOARD_*`` variable.
    """

    # Jupyter's idle culler: no message from the kernel and no browser for 10 minutes.
    # A backstop: a kernel without a browser goes much sooner (cull_disconnected).
    cull_idle: int = 600
    # How often kernels are checked; shutting down happens within one interval of the
    # time limits above and below.
    cull_interval: int = 60
    # No browser connected for a minute: the page is gone (a reload reconnects within
    # seconds; the websocket's pings notice a vanished browser in about 90 s).
    cull_disconnected: int = 60
    # About 200 MB each: 8 visitors at once stay under 2 GB.
    max_kernels: int = 8


def notebook_path() -> Path:
    """The dashboard notebook shipped with the package."""
    return Path(str(files("pagekit") / "dashboards" / "pagekit.ipynb"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_for(host: str, token: str | None) -> str | None:
    """The URL token: ``token`` if given; generated for ``GENERATE`` or a non-loopback
    host without one; none on loopback by default."""
    if token == GENERATE or (token is None and not is_loopback(host)):
        return secrets.token_urlsafe(16)
    return token


def voila_argv(*, host: str, port: int, token: str | None, browser: bool) -> list[str]:
    """Voila's command line for the dashboard (tornado settings go in as config)."""
    argv = [
        str(notebook_path()),
        f"--Voila.ip={host}",
        f"--port={port}",
        "--Voila.open_browser=" + ("True" if browser else "False"),
        "--show_tracebacks=False",
    ]
    if token:
        argv.append(f"--token={token}")
    return argv


def voila_config(settings: Settings, policy: KernelPolicy | None = None) -> Any:
    """Config for Voila's tornado app and its kernel manager.

    Uploads travel in one websocket message, so the message limit (tornado's default is
    10 MiB) is ``websocket_max_message_mb``. Kernels follow ``policy`` (see the module's
    docstring); none is started ahead of a visit (Voila's preheating stays off).
    """
    from traitlets.config import Config

    policy = policy or KernelPolicy()
    cfg = Config()
    cfg.Voila.tornado_settings = settings.tornado_settings
    cfg.VoilaConfiguration.preheat_kernel = False
    cfg.VoilaConfiguration.multi_kernel_manager_class = kernel_manager_class()
    km = cfg.DashboardKernelManager
    km.cull_idle_timeout = policy.cull_idle
    km.cull_interval = policy.cull_interval
    km.cull_connected = False  # an open tab keeps its kernel: someone is looking at it
    km.cull_busy = False
    km.cull_disconnected = policy.cull_disconnected
    km.max_kernels = policy.max_kernels
    return cfg


@cache
def kernel_manager_class() -> type:
    """jupyter_server's kernel manager plus the dashboard's rules (built on first use, so
    importing this module needs no notebook extra)."""
    from jupyter_core.utils import ensure_async
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from tornado.web import HTTPError
    from traitlets import Integer

    class DashboardKernelManager(AsyncMappingKernelManager):  # type: ignore[misc]
        """Shuts down kernels no browser is connected to, and caps their number."""

        cull_disconnected = Integer(
            KernelPolicy.cull_disconnected,
            config=True,
            help="Shut down a kernel that no browser has been connected to for this many "
            "seconds, however active it is (checked every cull_interval). A kernel still "
            "running the notebook for its page waits.",
        )
        max_kernels = Integer(
            KernelPolicy.max_kernels,
            config=True,
            help="Refuse a new visit (HTTP 503) while this many kernels run; 0: no limit.",
        )

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._unwatched_since: dict[str, float] = {}
            self._starting = 0

        async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
            if self.max_kernels > 0 and self._running() >= self.max_kernels:
                await self.cull_kernels()  # a check may be due before the next interval
                if self._running() >= self.max_kernels:
                    self.log.warning("Refusing a visit: %d kernels running", self._running())
                    raise HTTPError(
                        503,
                        reason=f"The dashboard is open in {self.max_kernels} pages already; "
                        "close one (or raise --max-kernels) and reload",
                    )
            self._starting += 1
            try:
                kernel_id = await super().start_kernel(*args, **kwargs)
            finally:
                self._starting -= 1
            self._unwatched_since[kernel_id] = time.monotonic()
            return kernel_id

        def _running(self) -> int:
            return len(self.list_kernel_ids()) + self._starting

        def notify_connect(self, kernel_id: str) -> None:
            super().notify_connect(kernel_id)
            self._unwatched_since.pop(kernel_id, None)

        def notify_disconnect(self, kernel_id: str) -> None:
            super().notify_disconnect(kernel_id)
            if kernel_id in self and self._kernel_connections.get(kernel_id, 0) <= 0:
                self._unwatched_since[kernel_id] = time.monotonic()

        async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
            self._unwatched_since.pop(kernel_id, None)
            await ensure_async(super().shutdown_kernel(kernel_id, *args, **kwargs))

        async def cull_kernel_if_idle(self, kernel_id: str) -> None:
            since = self._unwatched_since.get(kernel_id)
            kernel = self._kernels.get(kernel_id)
            if since is not None and kernel is not None and self.cull_disconnected > 0:
                now = time.monotonic()
                if getattr(kernel, "execution_state", None) in ("starting", "busy"):
                    self._unwatched_since[kernel_id] = now  # still rendering its page
                elif now - since > self.cull_disconnected:
                    self.log.warning(
                        "Shutting down kernel %s: no browser connected for %d s",
                        kernel_id,
                        now - since,
                    )
                    await ensure_async(self.shutdown_kernel(kernel_id))
                    return
            await ensure_async(super().cull_kernel_if_idle(kernel_id))

    return DashboardKernelManager


@cache
def voila_class() -> type:
    """Voila, with its page-close shutdown working (voila#1458).

    Voila's page asks for its kernel's shutdown on ``beforeunload`` with a beacon that
    carries an ``_xsrf`` field read from a cookie the page never sets, so the server
    answers 403 and every closed page left its kernel running. The shutdown handler
    here skips the XSRF check: the beacon is still authenticated (cookie or token),
    and the kernel id it names is a random UUID that only that page knows.
    """
    from voila.app import Voila
    from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler

    class ShutdownOnUnloadHandler(VoilaShutdownKernelHandler):  # type: ignore[misc]
        def check_xsrf_cookie(self) -> None:
            return None

    class DashboardVoila(Voila):  # type: ignore[misc]
        def init_handlers(self) -> list[Any]:
            return [
                (h[0], ShutdownOnUnloadHandler, *h[2:]) if h[1] is VoilaShutdownKernelHandler else h
                for h in super().init_handlers()
            ]

    return DashboardVoila
