"""Full-text search over the pages' text: the index, and the queries that use it.

- SQLite: an FTS5 table over ``pages.text`` (external content: the text is stored once,
  in ``pages``), kept in step by triggers on ``pages``. Whatever writes a page (a worker
  finishing it, a reprocess, a delete, a project's ``ON DELETE CASCADE``), the index
  follows in the same transaction. Ranked by ``bm25()``, snippets by ``snippet()``.
- PostgreSQL: a stored generated column ``pages.text_search``, ``to_tsvector('simple',
  text)``, with a GIN index of the pages that have text; PostgreSQL keeps both up by
  itself. Ranked by ``ts_rank_cd`` (which reads the stored words: an expression index
  would make it parse every matching page's text again), snippets by ``ts_headline``.

Both split words the same simple way: lower case, no stemming, accents kept. The query
language is :mod:`pagekit.search`; it becomes FTS5 syntax in which every term is a quoted
string, or a tsquery built from ``phraseto_tsquery`` of bound parameters, so nothing a
user types can be read as syntax. :func:`ensure_index` creates what a database lacks
(and fills it from the pages already there); every :class:`~pagekit.store.Store` runs it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..contract import SEARCH_ALL_COLUMNS, SEARCH_COLUMNS
from ..errors import SearchUnavailable
from ..search import MARK_END, MARK_START, Query, Term, snippet_forms
from . import Store

log = logging.getLogger(__name__)

FTS_TABLE = "pages_fts"
# Unicode letters, digits and marks make words (marks: accents in decomposed text, vowel
# signs in Indic scripts); case is folded, accents are kept, as PostgreSQL's 'simple'.
FTS_TOKENIZER = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'"
FTS_TRIGGERS = {
    "pages_fts_insert": "AFTER INSERT ON pages BEGIN "
    "INSERT INTO pages_fts (rowid, text) VALUES (new.id, new.text); END",
    "pages_fts_delete": "AFTER DELETE ON pages BEGIN "
    "INSERT INTO pages_fts (pages_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "pages_fts_update": "AFTER UPDATE OF text ON pages BEGIN "
    "INSERT INTO pages_fts (pages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO pages_fts (rowid, text) VALUES (new.id, new.text); END",
}
PG_COLUMN = "text_search"
PG_INDEX = "ix_pages_text_search"
PG_DOCUMENT = f"p.{PG_COLUMN}"
# Only pages that have text are in the GIN index: a page never processed, rewritten when
# it is queued or cancelled, adds no index entry. Queries say it too, so they use it.
PG_INDEXED = "text IS NOT NULL"
PG_MATCH = f"p.{PG_INDEXED} AND {PG_DOCUMENT} @@ "
# Serializes the index's creation by several processes opening a new database at once.
PG_LOCK = 0x7061676B  # "pagk"

# Words around the matches in a snippet.
SNIPPET_WORDS = 24
ELLIPSIS = "\u2026"
HEADLINE = (
    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxFragments=1, '
    f"MaxWords={SNIPPET_WORDS}, MinWords={SNIPPET_WORDS // 2}"
)
NO_FTS5 = (
    "full-text search needs SQLite's FTS5, which this Python's sqlite3 lacks: use a Python "
    "whose sqlite3 has it (python.org, conda and Linux distribution builds do), or "
    "PostgreSQL (PAGEKIT_DATABASE_URL)"
)


def ensure_index(engine: Engine) -> None:
    """Create the search index if the database lacks it, and index the pages already there.

    Costs one catalogue query when the index exists; several processes may call it at
    once (SQLite writers take turns; PostgreSQL takes an advisory lock).
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            _ensure_fts5(conn)
        elif conn.dialect.name == "postgresql":
            _ensure_gin(conn)


def _ensure_fts5(conn: Connection) -> None:
    names = {FTS_TABLE, *FTS_TRIGGERS}
    rows = conn.execute(
        text("SELECT name FROM sqlite_master WHERE name IN :names").bindparams(
            bindparam("names", expanding=True)
        ),
        {"names": sorted(names)},
    )
    have = set(rows.scalars())
    if have == names:
        return
    if FTS_TABLE not in have:
        try:
            conn.exec_driver_sql(
                f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(text, content='pages', "
                f"content_rowid='id', tokenize=\"{FTS_TOKENIZER}\")"
            )
        except OperationalError as exc:
            if "fts5" not in str(exc.orig):
                raise
            log.warning("no full-text search: %s", NO_FTS5)
            return
    for name, body in FTS_TRIGGERS.items():
        if name not in have:
            conn.exec_driver_sql(f"CREATE TRIGGER {name} {body}")
    # Pages written while a trigger was missing (or before the index existed).
    conn.exec_driver_sql(f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}) VALUES ('rebuild')")
    log.info("full-text search index built")


def _ensure_gin(conn: Connection) -> None:
    # The index as it should be: present, and partial (an older pagekit made it whole).
    current = text(
        "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
        "AND indexname = :index AND indexdef LIKE '% WHERE %')"
    )
    if conn.scalar(current, {"index": PG_INDEX}):
        return
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK})
    if conn.scalar(current, {"index": PG_INDEX}):
        return  # another process made it while we waited
    # Adding the column rewrites the table once, which computes it for every page.
    conn.exec_driver_sql(
        f"ALTER TABLE pages ADD COLUMN IF NOT EXISTS {PG_COLUMN} tsvector GENERATED ALWAYS "
        "AS (to_tsvector('simple', coalesce(text, ''))) STORED"
    )
    conn.exec_driver_sql(f"DROP INDEX IF EXISTS {PG_INDEX}")
    conn.exec_driver_sql(
        f"CREATE INDEX {PG_INDEX} ON pages USING gin ({PG_COLUMN}) WHERE {PG_INDEXED}"
    )
    log.info("full-text search index built")


# -- queries -------------------------------------------------------------------------------


def find(
    store: Store,
    query: Query,
    project_id: int | None,
    *,
    limit: int | None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The pages matching ``query``, best first (ties in page order), as dicts of
    :data:`~pagekit.contract.SEARCH_COLUMNS` (every project: ``SEARCH_ALL_COLUMNS``)."""
    with store.read() as s:
        dialect = _dialect(s)
        if dialect == "sqlite":
            sql, params = _sqlite_find(query, project_id)
            params.update(limit=-1 if limit is None else limit, offset=offset)
        else:
            sql, params = _pg_find(query, project_id)
            params.update(limit=limit, offset=offset)
        rows = _run(s, dialect, sql, params).mappings().all()
    columns = SEARCH_COLUMNS if project_id is not None else SEARCH_ALL_COLUMNS
    out = []
    for row in rows:
        plain, marked = snippet_forms(row["raw_snippet"])
        found = {**row, "score": float(row["score"] or 0), "snippet": plain, "snippet_html": marked}
        out.append({key: found[key] for key in columns})
    return out


def count(store: Store, query: Query, project_id: int | None) -> int:
    """How many pages match ``query`` (in one project, or in all)."""
    with store.read() as s:
        dialect = _dialect(s)
        if dialect == "sqlite":
            params: dict[str, Any] = {"match": fts5_match(query)}
            _, where = _project_clause(project_id, params)
            sql = (
                f"SELECT count(*) FROM {FTS_TABLE} CROSS JOIN pages p ON p.id = {FTS_TABLE}.rowid "
                f"WHERE {FTS_TABLE} MATCH :match{where}"
            )
        else:
            tsquery, params = pg_tsquery(query)
            _, where = _project_clause(project_id, params)
            sql = f"SELECT count(*) FROM pages p WHERE {PG_MATCH}{tsquery}{where}"
        return int(_run(s, dialect, sql, params).scalar() or 0)


def _dialect(s: Session) -> str:
    name = s.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise SearchUnavailable(
            f"full-text search runs on SQLite and PostgreSQL, not {name}: "
            "set PAGEKIT_DATABASE_URL to one of them"
        )
    return name


def _run(s: Session, dialect: str, sql: str, params: dict[str, Any]) -> Any:
    try:
        return s.execute(text(sql), params)
    except OperationalError as exc:
        # A database whose Python had no FTS5 when it was opened has no index.
        missing = f"no such table: {FTS_TABLE}" in str(exc.orig) or "fts5" in str(exc.orig)
        if dialect == "sqlite" and missing:
            raise SearchUnavailable(NO_FTS5) from exc
        raise


def _sqlite_find(query: Query, project_id: int | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "match": fts5_match(query),
        "start": MARK_START,
        "end": MARK_END,
        "ellipsis": ELLIPSIS,
        "words": SNIPPET_WORDS,
    }
    project, where = _project_clause(project_id, params)
    # bm25() is lower for better matches; the score is higher for better ones. CROSS JOIN
    # keeps the index on the outside: SQLite would otherwise loop over the project's pages
    # and run one MATCH per page.
    return (
        f"SELECT p.id AS page_id, p.page_number, p.source, p.status, p.confidence, "
        f"-bm25({FTS_TABLE}) AS score, "
        f"snippet({FTS_TABLE}, 0, :start, :end, :ellipsis, :words) AS raw_snippet{project} "
        f"FROM {FTS_TABLE} CROSS JOIN pages p ON p.id = {FTS_TABLE}.rowid "
        "JOIN projects pr ON pr.id = p.project_id "
        f"WHERE {FTS_TABLE} MATCH :match{where} "
        "ORDER BY score DESC, p.project_id, p.page_number LIMIT :limit OFFSET :offset"
    ), params


def _pg_find(query: Query, project_id: int | None) -> tuple[str, dict[str, Any]]:
    tsquery, params = pg_tsquery(query)
    params["headline"] = HEADLINE
    project, where = _project_clause(project_id, params)
    # Rank every match, then build snippets (which re-read the text) for one page of them.
    return (
        "SELECT hits.*, ts_headline('simple', coalesce(p.text, ''), "
        f"{tsquery}, :headline) AS raw_snippet "
        "FROM (SELECT p.id AS page_id, p.page_number, p.source, p.status, p.confidence, "
        f"p.project_id AS pid, ts_rank_cd({PG_DOCUMENT}, {tsquery}, 1) AS score{project} "
        "FROM pages p JOIN projects pr ON pr.id = p.project_id "
        f"WHERE {PG_MATCH}{tsquery}{where} "
        "ORDER BY score DESC, p.project_id, p.page_number LIMIT :limit OFFSET :offset) hits "
        "JOIN pages p ON p.id = hits.page_id "
        "ORDER BY hits.score DESC, hits.pid, hits.page_number"
    ), params


def _project_clause(project_id: int | None, params: dict[str, Any]) -> tuple[str, str]:
    """(extra columns, extra WHERE) for one project's pages, or every project's."""
    if project_id is None:
        return ", p.project_id AS project_id, pr.name AS project", ""
    params["project_id"] = project_id
    return "", " AND p.project_id = :project_id"


def fts5_match(query: Query) -> str:
    """``query`` in FTS5 syntax: each term a quoted string (FTS5 splits it into words as
    it split the pages, and a phrase's words must be adjacent), OR and NOT as operators."""

    def term(t: Term) -> str:
        return '"' + t.text.replace('"', '""') + '"' + ("*" if t.prefix else "")

    expr = " AND ".join("(" + " OR ".join(map(term, group)) + ")" for group in query.groups)
    if query.excluded:
        expr = f"({expr})" + "".join(f" NOT {term(t)}" for t in query.excluded)
    return expr


def pg_tsquery(query: Query) -> tuple[str, dict[str, Any]]:
    """``query`` as a tsquery expression over bound parameters ``t0``, ``t1`` ...:
    ``phraseto_tsquery`` for a word or phrase (PostgreSQL splits it as it split the
    pages), ``to_tsquery('...':*)`` for a prefix, joined by ``&&``, ``||`` and ``!!``."""
    params: dict[str, Any] = {}

    def term(t: Term) -> str:
        name = f"t{len(params)}"
        if t.prefix:
            params[name] = "'" + t.text.replace("\\", "\\\\").replace("'", "''") + "':*"
            return f"to_tsquery('simple', :{name})"
        params[name] = t.text
        return f"phraseto_tsquery('simple', :{name})"

    expr = " && ".join("(" + " || ".join(map(term, group)) + ")" for group in query.groups)
    for t in query.excluded:
        expr = f"({expr}) && !!{term(t)}"
    return f"({expr})", params
