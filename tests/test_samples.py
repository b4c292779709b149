"""The shipped demo pages exist, split as documented, and all read well."""

from __future__ import annotations

import pytest

from pagekit import _pagegen as g
from pagekit import samples
from pagekit.ingest import load_item, split
from pagekit.processing import PageInput, process_page


def sample_pages():
    out = []
    for path in samples.paths():
        name, data, is_upload = load_item(path)
        out += split(data, name, max_bytes=10**8, max_pixels=120_000_000, is_upload=is_upload)
    return out


PAGES = sample_pages()


def test_samples_are_small_and_numerous() -> None:
    paths = samples.paths()
    assert paths == sorted(paths)
    names = {p.name for p in paths}
    assert "box3.pdf" in names and "letter-03.jpg" in names
    assert sum(p.stat().st_size for p in paths) < 2 * 1024 * 1024
    assert len(PAGES) >= 12
    box3 = [p for p in PAGES if p.source == "box3.pdf"]
    assert len(box3) == 4


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.label)
def test_sample_page_reads_correctly(page) -> None:
    result = process_page(PageInput(page.index, page.kind, page.data, page.label))
    assert result.ok, result.error
    assert result.words > 20
    expected = samples.expected_text(page.source).split("\n\n")[page.index]
    assert g.word_recall(expected, result.text) >= 0.9
    if page.label == "box3.pdf page 1":
        assert result.engine == "pdf-text-layer"
    else:
        assert result.engine.startswith("tesseract")


def test_make_samples_is_deterministic(tmp_path, monkeypatch) -> None:
    from pagekit.samples import make_samples

    runs = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        monkeypatch.setattr(make_samples, "HERE", tmp_path / run)
        expected = make_samples.build()
        runs.append({name: (tmp_path / run / name).read_bytes() for name in expected})
    assert runs[0] == runs[1]
    assert sorted(runs[0]) == [p.name for p in samples.paths()]
