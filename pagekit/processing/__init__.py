"""Pure page processing: ``PageInput -> PageResult``, no Celery, no database.

Built-in stages: load, PDF text layer, render, OCR (Tesseract), thumbnail; then the
custom steps a page names, from the step registry.
"""

from __future__ import annotations

from .ocr import engine_info
from .pipeline import process_page
from .steps import (
    StepContext,
    get_step,
    import_step_modules,
    load_entry_points,
    register_step,
    step,
    step_names,
)
from .types import Cancelled, PageInput, PageResult

__all__ = [
    "Cancelled",
    "PageInput",
    "PageResult",
    "StepContext",
    "engine_info",
    "get_step",
    "import_step_modules",
    "load_entry_points",
    "process_page",
    "register_step",
    "step",
    "step_names",
]
