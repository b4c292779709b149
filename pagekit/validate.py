"""The rules for what users type, in one place (standard library only).

:class:`pagekit.Client` applies them, so the CLI, the HTTP API and the widgets agree on
every rule and raise the same typed errors (:mod:`pagekit.errors`). The API's schema
quotes the same limits.
"""

from __future__ import annotations

import math
import operator
import re
import unicodedata
from collections.abc import Iterable

from .contract import OCR_MODES, PAGE_COLUMNS, PageState
from .errors import (
    InvalidInput,
    InvalidLanguage,
    InvalidOcrMode,
    InvalidPageNumber,
    InvalidPageSelection,
    InvalidProjectName,
    InvalidReviewThreshold,
    UnknownStatus,
)

# Ids and page numbers are SQL INTEGER columns: 32-bit on PostgreSQL.
ID_MAX = 2**31 - 1
NAME_MAX = 200
STEP_NAME_MAX = 100
# Bidirectional embeddings, overrides and isolates: "cod\u202egnp.exe" shows as "codexe.png".
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# No control characters, and no bidirectional overrides that display a name reversed.
PRINTABLE = r"^[^\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]+$"
_PRINTABLE = re.compile(PRINTABLE)
# Ranges and numbers in one page selection ("1,2,5-9").
SELECTION_PARTS_MAX = 10_000
# A Tesseract language: three letters ("eng"), maybe with a variant ("chi_sim", "deu_latf").
LANGUAGE = r"^[a-z]{3}(_[a-z]+)?$"
_LANGUAGE = re.compile(LANGUAGE)
# Languages per project: Tesseract tries each on every word, so each one slows OCR down.
LANGUAGES_MAX = 10


def bidi_controls(name: str) -> list[str]:
    """The bidirectional control characters in ``name``, as ``U+202E``, sorted."""
    return sorted({f"U+{ord(ch):04X}" for ch in name if ch in BIDI_CONTROLS})


def project_name(name: object) -> str:
    """A project name, stripped; 1-200 printable characters."""
    if not isinstance(name, str):
        raise InvalidProjectName(f"a project name is text, not {type(name).__name__}")
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise InvalidProjectName("a project needs a name: it is empty or only spaces")
    if len(name) > NAME_MAX:
        raise InvalidProjectName(f"a project name has at most {NAME_MAX} characters")
    if not _PRINTABLE.match(name):
        raise InvalidProjectName(
            f"project name {name!r} contains control or text-direction characters; remove them"
        )
    return name


def step_names(steps: Iterable[object] | None) -> list[str]:
    """Custom step names as a list (each 1-100 printable characters, no repeats)."""
    if steps is None:
        return []
    if isinstance(steps, str):
        steps = [s for s in steps.split(",") if s.strip()]
    out: list[str] = []
    for step in steps:
        if not isinstance(step, str) or not step.strip() or len(step) > STEP_NAME_MAX:
            raise InvalidProjectName(f"a step name has 1 to {STEP_NAME_MAX} characters: {step!r}")
        if not _PRINTABLE.match(step):
            raise InvalidProjectName(f"step name {step!r} contains control characters")
        if step.strip() not in out:
            out.append(step.strip())
    return out


def page_number(value: object) -> int:
    """A page number: a whole number from 1 to 2**31-1."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            raise InvalidPageNumber(f"a page number is a whole number from 1, not {value!r}")
    if not 1 <= value <= ID_MAX:
        raise InvalidPageNumber(f"page number {value} is out of range: use 1 to {ID_MAX}")
    return value


def page_ids(value: Iterable[object] | int) -> list[int]:
    """Page ids as a list of whole numbers from 1 (numpy integers too), repeats dropped."""
    values = list(value) if isinstance(value, Iterable) else [value]
    if not values:
        raise InvalidInput("no pages given: pass page ids, or page numbers like '1,3-5'")
    ids = []
    for v in values:
        try:
            pid = operator.index(v) if not isinstance(v, bool) else 0
        except TypeError:
            pid = 0
        if not 1 <= pid <= ID_MAX:
            raise InvalidInput(f"a page id is a whole number from 1, not {v!r:.40}")
        ids.append(pid)
    return list(dict.fromkeys(ids))


def page_states(status: str | Iterable[str] | None) -> list[PageState] | None:
    """Page states to filter on, or None for all; an unknown name is an error."""
    if status is None or status == "":
        return None
    names = [status] if isinstance(status, str) else list(status)
    out = []
    for name in names:
        try:
            out.append(PageState(str(name).strip().lower()))
        except ValueError:
            known = ", ".join(PageState)
            raise UnknownStatus(f"no page status {name!r}; use one of: {known}") from None
    return out


def page_selection(spec: str) -> list[tuple[int, int]]:
    """Parse ``"1,2,5"`` or ``"3-9"`` into inclusive ``(first, last)`` page-number ranges.

    Nothing is expanded, so ``1-100000000`` costs no more than ``1-10``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidPageSelection("no pages given: use numbers and ranges, e.g. 1,2,5 or 3-9")
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > SELECTION_PARTS_MAX:
        raise InvalidPageSelection(f"at most {SELECTION_PARTS_MAX} numbers or ranges at once")
    ranges = []
    for part in parts:
        first, dash, last = part.partition("-")
        try:
            lo = page_number(first)
            hi = page_number(last) if dash else lo
        except InvalidPageNumber:
            raise InvalidPageSelection(
                f"cannot read {part!r} in {spec!r}: use page numbers from 1 and ranges, "
                "e.g. 1,2,5 or 3-9"
            ) from None
        if hi < lo:
            raise InvalidPageSelection(f"range {part!r} runs backwards; write {hi}-{lo}")
        ranges.append((lo, hi))
    return ranges


def paging(limit: object, offset: object) -> tuple[int | None, int]:
    """``limit`` (None: all) and ``offset`` as whole numbers from 0."""
    for name, value in (("limit", limit), ("offset", offset)):
        if value is None and name == "limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ID_MAX:
            raise InvalidInput(f"{name} is a whole number from 0 to {ID_MAX}, not {value!r}")
    return limit, offset  # type: ignore[return-value]


def review_flag(value: object) -> bool | None:
    """The ``needs_review`` filter: True (flagged pages), False (the others) or None (all)."""
    if value is None or isinstance(value, bool):
        return value
    raise InvalidInput(f"needs_review is True, False or None, not {value!r:.40}")


def page_sort(sort: object) -> tuple[str, bool] | None:
    """``"confidence"`` or ``"-confidence"`` (descending) as ``(column, descending)``; the
    column is one of :data:`pagekit.contract.PAGE_COLUMNS`. None: page order."""
    if sort is None or sort == "":
        return None
    if not isinstance(sort, str):
        raise InvalidInput(f"sort is a column name like '-confidence', not {sort!r}")
    column = sort.strip()
    descending = column.startswith("-")
    column = column.removeprefix("-")
    if column not in PAGE_COLUMNS:
        raise InvalidInput(
            f"cannot sort pages by {column!r}; use one of: {', '.join(PAGE_COLUMNS)} "
            "(a leading '-' sorts descending)"
        )
    return column, descending


def languages(value: object) -> list[str] | None:
    """Tesseract languages as a list of codes (``["eng", "deu"]``), or None for the
    installation's default (``PAGEKIT_OCR_LANG``).

    Takes Tesseract's own ``"eng+deu"``, ``"eng,deu"`` or a list of codes.
    """
    if value is None:
        return None
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise InvalidLanguage(
            f"languages are text like 'eng+deu' or a list of codes, not {type(value).__name__}"
        )
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidLanguage(f"a language code is text like 'eng', not {item!r:.40}")
        for code in re.split(r"[+,\s]+", item.strip()):
            if not code or code in out:
                continue
            if code == "osd":
                raise InvalidLanguage(
                    "'osd' is Tesseract's orientation data, not a language: leave it out"
                )
            if not _LANGUAGE.match(code):
                raise InvalidLanguage(
                    f"{code!r:.40} is not a Tesseract language code: use three lowercase "
                    "letters such as eng or deu (or a name like chi_sim), several joined "
                    "with + as in eng+deu"
                )
            out.append(code)
    if len(out) > LANGUAGES_MAX:
        raise InvalidLanguage(
            f"{len(out)} languages given; use at most {LANGUAGES_MAX} (each one slows OCR down)"
        )
    return out or None


def ocr_mode(value: object) -> str | None:
    """``"auto"``, ``"force"`` or ``"text-only"``; None for the default."""
    if value is None:
        return None
    if isinstance(value, str):
        mode = value.strip().lower().replace("_", "-")
        if mode in OCR_MODES:
            return mode
    raise InvalidOcrMode(f"no OCR mode {value!r:.40}; use one of: {', '.join(OCR_MODES)}")


def review_threshold(value: object) -> float | None:
    """A mean OCR confidence from 0 to 100 under which a page is flagged for review;
    None for the default."""
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or math.isnan(number) or not 0 <= number <= 100:
        raise InvalidReviewThreshold(
            f"a review threshold is a confidence from 0 to 100 (e.g. 60), not {value!r:.40}"
        )
    return number
