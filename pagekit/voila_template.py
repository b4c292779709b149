"""The dashboard's Voila template: Voila's ``lab`` template without outside requests.

Voila's ``lab`` page links Font Awesome from a CDN, and its error pages link Font
Awesome 4 from one, although Voila bundles Font Awesome 5 (with the v4 names that
ipywidgets' ``icon=`` uses) in its own static files. Offline each link is a failed
request; behind a firewall that drops packets, a page that waits for it. The
``pagekit`` template (``templates/jupyter/voila/templates/pagekit``) is ``lab`` without
those links.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any

NAME = "pagekit"


def data_dir() -> Path:
    """The Jupyter data directory that holds ``voila/templates/pagekit``."""
    return Path(str(files("pagekit") / "templates" / "jupyter"))


def use(config: Any) -> None:
    """Serve Voila with the ``pagekit`` template: name it in ``config`` (a traitlets
    ``Config``) and put :func:`data_dir` first on ``JUPYTER_PATH``.

    Voila looks templates and their static files up in the Jupyter data directories
    only, and again on every request for a static file, so the variable is set for the
    whole process.
    """
    known = os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
    paths = dict.fromkeys([str(data_dir()), *filter(None, known)])
    os.environ["JUPYTER_PATH"] = os.pathsep.join(paths)
    config.VoilaConfiguration.template = NAME
