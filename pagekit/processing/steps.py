"""The registry of custom processing steps, papermill-style.

A step is ``fn(ctx: StepContext) -> dict | None``; the dict is stored JSON-able in
``PageResult.extra[name]``. Register with ``@step("name")``, :func:`register_step`, the
``pagekit.steps`` entry-point group, or a module named in ``PAGEKIT_STEP_MODULES``.
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StepNotFound

if TYPE_CHECKING:
    from PIL import Image

    from .types import PageResult

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pagekit.steps"
# Names the built-in stages use in PageResult.timings; a custom step cannot take them.
RESERVED = frozenset(
    {"load", "pdfium", "text_layer", "render", "deskew", "ocr", "orient", "thumbnail", "total"}
)


class StepContext:
    """What a custom step sees of the page being processed."""

    def __init__(
        self,
        page_id: int,
        source: str,
        kind: str,
        result: PageResult,
        image_loader: Callable[[], Image.Image],
    ):
        self.page_id = page_id
        self.source = source
        self.kind = kind  # "image" | "pdf"
        self.result = result  # the PageResult so far (steps may read or amend it)
        self._image_loader = image_loader
        self._image: Image.Image | None = None

    @property
    def text(self) -> str:
        """The page's text so far (OCR or PDF text layer)."""
        return self.result.text

    @property
    def image(self) -> Image.Image:
        """The page as an upright PIL image, loaded or rendered on first access."""
        if self._image is None:
            self._image = self._image_loader()
        return self._image


StepFn = Callable[[StepContext], "dict[str, Any] | None"]

_registry: dict[str, StepFn] = {}


def register_step(name: str, fn: StepFn) -> StepFn:
    """Register ``fn`` as the step ``name`` (registering a name again replaces it)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a step needs a non-empty name")
    if name in RESERVED:
        raise ValueError(f"{name!r} is a built-in stage; give the step another name")
    if not callable(fn):
        raise TypeError(f"step {name!r} must be callable, got {type(fn).__name__}")
    _registry[name] = fn
    return fn


def step(name: str) -> Callable[[StepFn], StepFn]:
    """Decorator: ``@step("word_freq")`` registers the function as a custom step."""

    def decorate(fn: StepFn) -> StepFn:
        return register_step(name, fn)

    return decorate


def get_step(name: str) -> StepFn:
    """The step registered as ``name``; raises StepNotFound."""
    try:
        return _registry[name]
    except KeyError:
        raise StepNotFound(name, step_names()) from None


def step_names() -> list[str]:
    """Names of the registered steps, sorted."""
    return sorted(_registry)


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Load the ``pagekit.steps`` entry points; return the names that loaded.

    An entry point may name a module (importing it registers its steps) or a callable
    (registered under the entry point's name unless it registered itself). One that fails
    is logged and skipped, so a broken plugin cannot stop a worker.
    """
    loaded = []
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type) and obj not in _registry.values():
                register_step(ep.name, obj)
        except Exception:
            log.exception("pagekit step entry point %r (%s) failed to load", ep.name, ep.value)
            continue
        loaded.append(ep.name)
    return loaded


def import_step_modules(names: Iterable[str]) -> None:
    """Import modules by dotted name so that their ``@step`` decorators run.

    Raises ConfigError naming the module, since a worker without its configured steps
    would fail every page that uses them.
    """
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ConfigError(
                f"cannot import step module {name!r} ({type(exc).__name__}: {exc}); check "
                "PAGEKIT_STEP_MODULES and that the module is importable on the workers"
            ) from exc


@step("word_freq")
def word_freq(ctx: StepContext) -> dict[str, Any]:
    """Example step: the ten most frequent words (lowercase, 3+ letters) of the page."""
    words = (token.strip(".,;:!?\"'()[]") for token in ctx.text.lower().split())
    counts = Counter(word for word in words if len(word) >= 3 and word.isalpha())
    return {"top": [[word, n] for word, n in counts.most_common(10)]}
