"""A project's pages in page order with their word layouts: what PDF, hOCR and ALTO read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..contract import TextSource
from . import Page, PageLayout, Store
from .reporting import page_chunk

# Pages (each with its layout, tens of KB of words) fetched per round trip.
CHUNK = 50


@dataclass(frozen=True)
class LayoutPage:
    """One page as the layout exports see it; ``layout`` is None when OCR made none."""

    page_id: int
    page_number: int
    source: str
    kind: str  # "image" | "pdf"
    blob: str
    status: str
    text_source: str | None  # "ocr" | "text-layer" | "" | None (never processed)
    language: str | None
    engine: str | None
    width: int | None
    height: int | None
    layout: dict[str, Any] | None

    @property
    def ocr_layout(self) -> dict[str, Any] | None:
        """The layout if the page's text came from OCR; a text-layer page keeps its own."""
        return self.layout if self.layout and self.text_source != TextSource.TEXT_LAYER else None

    @property
    def name(self) -> str:
        """How messages name the page: ``"page 3 (box3.pdf)"``."""
        return f"page {self.page_number} ({self.source})"


def layout_pages(
    store: Store, project_id: int, *, after: int | None = None, limit: int = CHUNK
) -> list[LayoutPage]:
    """Up to ``limit`` pages with page numbers above ``after``, in page order, with layouts."""
    q = (
        select(
            Page.id,
            Page.page_number,
            Page.source,
            Page.kind,
            Page.blob,
            Page.status,
            Page.text_source,
            Page.language,
            Page.engine,
            Page.width,
            Page.height,
            PageLayout.layout,
        )  # fmt: skip
        .outerjoin(PageLayout, PageLayout.page_id == Page.id)
        .where(Page.project_id == project_id)
    )
    with store.read() as s:
        return [LayoutPage(*row) for row in s.execute(page_chunk(q, after=after, limit=limit))]


def iter_layout_pages(store: Store, project_id: int, chunk: int = CHUNK) -> Iterator[LayoutPage]:
    """Every page of the project in page order, ``chunk`` at a time (keyset pagination)."""
    last = None
    while rows := layout_pages(store, project_id, after=last, limit=chunk):
        yield from rows
        last = rows[-1].page_number
