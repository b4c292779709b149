"""pagekit: process stacks of document pages asynchronously from Jupyter.

    import pagekit
    client = pagekit.Client()
    proj = client.create_project("letters-1891")
    client.add_pages(proj, ["scan-028.jpg", "box3.pdf"])
    client.wait(client.process_pending(proj)["task_id"])
    client.pages(proj)

The names below are imported on first use: ``Client`` pulls in Celery, SQLAlchemy and
pandas, and a bare ``import pagekit`` (every ``pagekit`` command does one) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client
    from .config import Settings
    from .errors import PagekitError
    from .processing import register_step, step

# name -> the module that holds it
_LAZY = {
    "Client": ".client",
    "PagekitError": ".errors",
    "Settings": ".config",
    "register_step": ".processing",
    "step": ".processing",
}

__all__ = ["Client", "PagekitError", "Settings", "register_step", "step", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pagekit")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'pagekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
