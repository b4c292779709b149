"""pagekit: process stacks of document pages asynchronously from Jupyter.

    import pagekit
    client = pagekit.Client()
    proj = client.create_project("letters-1891")
    client.add_pages(proj, ["scan-028.jpg", "box3.pdf"])
    client.wait(client.process_pending(proj)["task_id"])
    client.pages(proj)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import PagekitError
from .processing import register_step, step

if TYPE_CHECKING:
    from .client import Client

__version__ = "0.1.0"
__all__ = ["Client", "PagekitError", "Settings", "register_step", "step", "__version__"]


def __getattr__(name: str) -> Any:
    # Client pulls in Celery and SQLAlchemy; import it only when asked for.
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'pagekit' has no attribute {name!r}")
