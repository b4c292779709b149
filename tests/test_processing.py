"""Page processing with real Tesseract and real PDFs."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from pagekit import _pagegen as g
from pagekit.errors import ConfigError, StepNotFound
from pagekit.processing import (
    Cancelled,
    PageInput,
    PageResult,
    engine_info,
    get_step,
    import_step_modules,
    load_entry_points,
    process_page,
    register_step,
    step,
    step_names,
)

TEXT = g.SAMPLE_TEXTS[0]
SMALL = {"width": 1275, "height": 1650, "font_size": 34}


def page(kind: str, data: bytes, **kw: object) -> PageInput:
    return PageInput(page_id=1, kind=kind, data=data, source=kw.pop("source", "p.png"), **kw)


@pytest.fixture(scope="module")
def png() -> bytes:
    return g.image_bytes(g.text_image(TEXT, **SMALL))


def test_ocr_finds_the_words_of_a_page(png: bytes) -> None:
    result = process_page(page("image", png))
    assert result.ok, result.error
    assert g.word_recall(TEXT, result.text) >= 0.95
    assert result.engine.startswith("tesseract ")
    assert result.confidence is not None and 50 < result.confidence <= 100
    assert result.words == len(result.text.split()) and result.chars == len(result.text.strip())
    assert (result.width, result.height) == (1275, 1650)
    assert {"load", "ocr", "thumbnail", "total"} <= set(result.timings)
    thumb = Image.open(io.BytesIO(result.thumbnail))
    assert max(thumb.size) <= 256


def test_skewed_noisy_photo_still_reads() -> None:
    img = g.text_image(TEXT, rotate=1.0, noise=0.002, seed=3, **SMALL).convert("RGB")
    result = process_page(page("image", g.image_bytes(img, "JPEG", quality=70)))
    assert result.ok, result.error
    assert g.word_recall(TEXT, result.text) >= 0.9


def test_exif_orientation_6_jpeg_is_turned_upright() -> None:
    data = g.image_bytes(g.text_image(TEXT, **SMALL), "JPEG", exif_orientation=6, quality=85)
    assert Image.open(io.BytesIO(data)).size == (1650, 1275)  # stored sideways
    result = process_page(page("image", data, source="photo.jpg"))
    assert result.ok, result.error
    assert (result.width, result.height) == (1275, 1650)
    assert g.word_recall(TEXT, result.text) >= 0.9


def test_text_layer_pdf_page_skips_ocr() -> None:
    result = process_page(page("pdf", g.text_pdf([TEXT]), source="a.pdf page 1"))
    assert result.ok, result.error
    assert result.engine == "pdf-text-layer"
    assert result.confidence is None and "ocr" not in result.timings
    assert g.word_recall(TEXT, result.text) == 1.0
    assert result.thumbnail


def test_scanned_pdf_page_is_ocrd() -> None:
    data = g.scanned_pdf([g.text_image(TEXT, **SMALL)], dpi=150)
    result = process_page(page("pdf", data, source="a.pdf page 2", render_dpi=200))
    assert result.ok, result.error
    assert result.engine.startswith("tesseract")
    assert "render" in result.timings and "ocr" in result.timings
    assert (result.width, result.height) == (1700, 2200)  # 8.5 x 11 in at 200 dpi
    assert g.word_recall(TEXT, result.text) >= 0.95


def test_pdf_with_few_text_layer_chars_is_ocrd() -> None:
    # A stray page number in the text layer is not "real text": OCR the page.
    data = g.text_pdf(["12"])
    result = process_page(page("pdf", data, render_dpi=100))
    assert result.ok, result.error
    assert result.engine.startswith("tesseract")


@pytest.mark.parametrize(
    ("kind", "data", "expect"),
    [
        ("image", b"not an image at all", "not a readable image"),
        ("image", None, "truncated; re-scan or re-export"),
        ("pdf", b"%PDF-1.4 garbage", "PDF cannot be read"),
        ("scroll", b"x", "unknown page kind"),
    ],
)
def test_bad_page_fails_with_a_message_naming_it(
    kind: str, data: bytes | None, expect: str, png: bytes
) -> None:
    data = png[: len(png) // 2] if data is None else data
    result = process_page(page(kind, data, source="scan-028.jpg"))
    assert not result.ok
    assert result.error.startswith("scan-028.jpg: ") and expect in result.error
    assert "\n" not in result.error


def test_decompression_bomb_page_fails_before_decoding() -> None:
    data = g.image_bytes(Image.new("1", (12000, 12000), 1))
    result = process_page(page("image", data, max_image_pixels=10_000_000))
    assert not result.ok and "over the limit of 10,000,000" in result.error


def test_missing_language_says_how_to_install_it(png: bytes) -> None:
    result = process_page(page("image", png, lang="xyz"))
    assert not result.ok
    assert "pip install tessdata-fast-xyz" in result.error
    info = engine_info(lang="eng+xyz")
    assert "pip install tessdata-fast-xyz" in info["error"]
    assert engine_info()["error"] is None and "eng" in engine_info()["languages"]


def test_custom_step_output_lands_in_extra(png: bytes) -> None:
    seen = {}

    @step("test_shout")
    def shout(ctx):
        seen["image_size"] = ctx.image.size
        return {"first": ctx.text.split()[0].upper(), "page": ctx.page_id, "kind": ctx.kind}

    assert "test_shout" in step_names() and get_step("test_shout") is shout
    result = process_page(page("image", png, steps=("test_shout", "word_freq")))
    assert result.ok, result.error
    assert result.extra["test_shout"] == {"first": "DEAR", "page": 1, "kind": "image"}
    assert ["the", 11] in result.extra["word_freq"]["top"]
    assert seen["image_size"] == (1275, 1650)
    assert "test_shout" in result.timings


def test_step_on_text_layer_page_can_render_the_image() -> None:
    register_step("test_size", lambda ctx: {"size": list(ctx.image.size)})
    result = process_page(page("pdf", g.text_pdf([TEXT]), steps=("test_size",), render_dpi=72))
    assert result.ok, result.error
    assert result.extra["test_size"] == {"size": [612, 792]}


def test_failing_step_fails_the_page_naming_the_step(png: bytes) -> None:
    @step("test_crash")
    def crash(ctx):
        raise ZeroDivisionError("division by zero")

    result = process_page(page("image", png, source="scan-028.jpg", steps=("test_crash",)))
    assert not result.ok
    assert result.error == (
        "scan-028.jpg: step 'test_crash' failed: ZeroDivisionError: division by zero"
    )
    assert result.text  # the OCR before the step is kept for inspection


def test_step_returning_non_json_fails_the_page(png: bytes) -> None:
    register_step("test_object", lambda ctx: {"when": object()})
    result = process_page(page("image", png, steps=("test_object",)))
    assert not result.ok and "not JSON-able" in result.error


def test_unknown_step_fails_the_page_before_ocr(png: bytes) -> None:
    result = process_page(page("image", png, steps=("no_such_step",)))
    assert not result.ok
    assert "no processing step named 'no_such_step'" in result.error
    assert "ocr" not in result.timings
    with pytest.raises(StepNotFound):
        get_step("no_such_step")


def test_should_stop_cancels_between_stages(png: bytes) -> None:
    calls = []

    def stop_before_ocr() -> bool:
        calls.append(1)
        return len(calls) > 1  # let "load" run, stop before "ocr"

    with pytest.raises(Cancelled):
        process_page(page("image", png), should_stop=stop_before_ocr)
    assert len(calls) == 2


def test_result_round_trips_through_json(png: bytes) -> None:
    result = process_page(page("image", png))
    data = result.to_json()
    assert base64.b64decode(data["thumbnail_b64"]) == result.thumbnail
    json.dumps(data)
    assert PageResult.from_json(data) == result


def test_import_step_modules_registers_their_steps(tmp_path, monkeypatch, png: bytes) -> None:
    (tmp_path / "my_test_steps.py").write_text(
        "from pagekit.processing import step\n\n"
        "@step('test_from_module')\n"
        "def count_e(ctx):\n"
        "    return {'e': ctx.text.count('e')}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import_step_modules(["my_test_steps"])
    result = process_page(page("image", png, steps=("test_from_module",)))
    assert result.ok and result.extra["test_from_module"]["e"] > 10
    with pytest.raises(ConfigError, match="cannot import step module 'no_such_steps_mod'"):
        import_step_modules(["no_such_steps_mod"])


def test_entry_points_load_and_a_broken_one_is_only_logged(tmp_path, monkeypatch, caplog) -> None:
    (tmp_path / "ep_steps.py").write_text("def words_x2(ctx):\n    return {'n': 2}\n")
    dist = tmp_path / "ep_steps-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-steps\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pagekit.steps]\ntest_ep_double = ep_steps:words_x2\ntest_ep_broken = ep_missing_mod\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_entry_points()
    assert "test_ep_double" in loaded and "test_ep_broken" not in loaded
    assert get_step("test_ep_double")(None) == {"n": 2}
    assert "test_ep_broken" in caplog.text


def test_a_hyphen_that_ends_a_line_stays_a_hyphen() -> None:
    """PDFium marks a line-end hyphen as U+0002; the page text must show '-', not a box."""
    import pypdfium2

    from pagekit.processing import pdf

    data = g.text_pdf(["word holloway-family " * 12])  # wraps after "holloway-"
    doc = pypdfium2.PdfDocument(data)
    try:
        text = pdf.text_layer(doc[0])
    finally:
        doc.close()
    assert "\x02" not in text
    assert text.count("holloway-family") == 12
