"""Full-text search: the query language users type, and the snippets they read.

One syntax on SQLite and PostgreSQL (standard library only; the queries that run it are
in :mod:`pagekit.store.search`):

- ``harbour ship``: pages with every word;
- ``"the harbour"``: the words next to each other, in this order;
- ``ship OR boat``: either; ``OR`` (upper case) joins the terms on each side of it, so
  ``harbour ship OR boat`` is harbour and (ship or boat);
- ``harb*``: a word that starts with ``harb`` (one word, then ``*``);
- ``-storm``, ``-"heavy rain"``: pages without it (next to at least one term to find).

Case does not count, accents do (``cafe`` does not find ``café``). Anything else is part
of a word, never syntax: a query cannot fail to parse, so a user never meets an error
from the database's own query syntax.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .errors import InvalidSearchQuery

# A query is typed into a box: 500 characters is a paragraph, and bounds the work.
QUERY_MAX = 500
# Words, phrases and prefixes in one query: each is one more index lookup.
TERMS_MAX = 32

# What the database puts around a match in a snippet, before :func:`snippet_forms`
# turns it into ``[...]`` and ``<mark>...</mark>``: control characters, which OCR and
# text layers do not produce (a stray one only moves a mark, never unescapes text).
MARK_START = "\x02"
MARK_END = "\x03"

_OR = "OR"
_AND = "AND"  # all words must match anyway: accepted, and ignored
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]")
_PREFIX = re.compile(r"^([^\W_]+)\*+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE = re.compile(r"\s+")
_MARKS = re.compile(f"({MARK_START}|{MARK_END})")


@dataclass(frozen=True)
class Term:
    """A word or a phrase to find, as typed (the database splits it into words)."""

    text: str
    prefix: bool = False  # ``harb*``: words starting with ``text`` (one word)


@dataclass(frozen=True)
class Query:
    """A parsed query: every group must match (a group matches when one of its terms
    does), and no term of ``excluded`` may."""

    text: str
    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...] = ()


def parse(query: object) -> Query:
    """Read what a user typed; :class:`InvalidSearchQuery` when there is nothing to find."""
    if not isinstance(query, str):
        raise InvalidSearchQuery(f"a search query is text, not {type(query).__name__}")
    text = _CONTROL.sub(" ", query).strip()
    if not text:
        raise InvalidSearchQuery("the search query is empty: type a word to find, e.g. harbour")
    if len(text) > QUERY_MAX:
        raise InvalidSearchQuery(
            f"the search query has {len(text)} characters; use at most {QUERY_MAX}"
        )
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    joined = False  # the last token was OR
    for match in _TOKEN.finditer(text):
        minus, quoted, bare = match.groups()
        if bare in (_OR, _AND):
            joined = bare == _OR and bool(groups)
            continue
        if bare is not None:
            minus, bare = ("-", bare[1:]) if bare.startswith("-") else ("", bare)
            prefix = _PREFIX.match(bare)
            term = Term(prefix.group(1), prefix=True) if prefix else Term(bare)
        else:
            term = Term(quoted.strip())
        if not _WORD.search(term.text):  # punctuation alone: nothing to look up
            continue
        if joined:  # "a OR -b": the minus is only a hyphen
            groups[-1].append(term)
        elif minus:
            excluded.append(term)
        else:
            groups.append([term])
        joined = False
    if not groups:
        if excluded:
            raise InvalidSearchQuery(
                f"{text!r:.60} only leaves pages out (-word): add a word to find, "
                "e.g. harbour -storm"
            )
        raise InvalidSearchQuery(
            f"{text!r:.60} has no word to search for: type letters or digits, e.g. harbour"
        )
    if sum(map(len, groups)) + len(excluded) > TERMS_MAX:
        raise InvalidSearchQuery(
            f"the search query has too many words and phrases; use at most {TERMS_MAX}"
        )
    return Query(text, tuple(tuple(g) for g in groups), tuple(excluded))


def snippet_forms(raw: str | None) -> tuple[str, str]:
    """A snippet the database marked (:data:`MARK_START` ... :data:`MARK_END`) as
    ``(plain, html)``: plain text with matches in ``[`` ``]`` for terminals and tables,
    and HTML with the page text escaped and matches in ``<mark>`` ``</mark>``, safe to
    put in a web page (page text is user content). Matches only spaces apart (the words
    of a phrase) are one mark."""
    pieces: list[tuple[str, bool]] = []  # (text, is a match)
    inside = False
    for part in _MARKS.split(_SPACE.sub(" ", raw or "").strip()):
        if part in (MARK_START, MARK_END):
            inside = part == MARK_START  # a stray mark moves a mark, never more
            continue
        part = _CONTROL.sub("", part)
        if not part:
            continue
        if inside and len(pieces) > 1 and pieces[-2][1] and not pieces[-1][0].strip():
            gap, _ = pieces.pop()
            pieces[-1] = (pieces[-1][0] + gap + part, True)
        elif inside and pieces and pieces[-1][1]:
            pieces[-1] = (pieces[-1][0] + part, True)
        else:
            pieces.append((part, inside))
    plain = "".join(f"[{t}]" if match else t for t, match in pieces)
    marked = "".join(
        f"<mark>{html.escape(t)}</mark>" if match else html.escape(t) for t, match in pieces
    )
    return plain, marked


def marked_parts(snippet_html: str) -> list[tuple[str, bool]]:
    """An HTML snippet from :func:`snippet_forms` as ``(text, is_match)`` pieces of plain
    text, for drawing the matches another way (bold in a terminal)."""
    out: list[tuple[str, bool]] = []
    for i, part in enumerate(re.split(r"</?mark>", snippet_html)):
        if part:
            out.append((html.unescape(part), i % 2 == 1))
    return out
