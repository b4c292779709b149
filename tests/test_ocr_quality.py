"""OCR quality with real Tesseract: pages turned upright, straightened, text layers checked,
doubtful pages flagged, and word boxes where the words are."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from pagekit import _pagegen as g
from pagekit.config import _default_tessdata
from pagekit.processing import PageInput, PageResult, ocr, orient, process_page
from pagekit.processing.textcheck import check

TEXT = g.SAMPLE_TEXTS[0]
SMALL = {"width": 1275, "height": 1650, "font_size": 34}


def run(kind: str, data: bytes, **kw: object) -> PageResult:
    result = process_page(PageInput(page_id=1, kind=kind, data=data, source="p 1", **kw))
    assert result.ok, result.error
    return result


def png(img: Image.Image) -> bytes:
    return g.image_bytes(img)


@pytest.fixture(scope="module")
def upright() -> PageResult:
    return run("image", png(g.text_image(TEXT, **SMALL)))


# -- orientation -----------------------------------------------------------------------------


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_turned_page_is_read_upright(degrees: int, upright: PageResult) -> None:
    result = run("image", png(g.lying(g.text_image(TEXT, **SMALL), degrees)))
    assert result.rotation == degrees
    assert g.word_recall(TEXT, result.text) >= g.word_recall(TEXT, upright.text) - 0.02
    assert abs(result.confidence - upright.confidence) <= 5
    assert (result.width, result.height) == (1275, 1650)
    assert result.layout["rotation"] == degrees
    assert result.layout["words"][:3] == upright.layout["words"][:3]  # upright boxes
    thumb = Image.open(io.BytesIO(result.thumbnail))
    assert thumb.height > thumb.width  # the thumbnail stands upright too
    assert not result.needs_review


def test_upright_page_is_not_asked_about_orientation(upright: PageResult) -> None:
    assert upright.rotation == 0 and upright.skew == 0.0
    assert "orient" not in upright.timings  # a confident first reading: no OSD
    assert upright.text_source == "ocr" and upright.text_source_reason == "image page"


def test_osd_saying_upside_down_does_not_turn_an_upright_page(monkeypatch) -> None:
    # ALL-CAPS text looks alike both ways up: OSD calls this upright page upside down.
    img = g.text_image(TEXT.upper(), **SMALL)
    turn, confidence = ocr.orientation(img, tessdata=_default_tessdata())
    assert turn == 180 and confidence >= orient.ORIENT_MIN_CONF
    monkeypatch.setattr(orient, "DOUBT_BELOW", 101.0)  # ask OSD about every page
    result = run("image", png(img))
    assert "orient" in result.timings
    assert result.rotation == 0  # the upside-down reading was worse, and dropped
    assert g.word_recall(TEXT.upper(), result.text) >= 0.9


def test_rotate_off_leaves_the_page_as_it_lies() -> None:
    result = run("image", png(g.lying(g.text_image(TEXT, **SMALL), 180)), rotate=False)
    assert result.rotation == 0 and "orient" not in result.timings
    assert g.word_recall(TEXT, result.text) < 0.3


# -- deskew ----------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [2.0, -2.5, 3.5, -5.0])
def test_skewed_page_is_straightened(angle: float, upright: PageResult) -> None:
    result = run("image", png(g.text_image(TEXT, rotate=angle, **SMALL)))
    assert result.skew == pytest.approx(-angle, abs=0.15)
    assert result.rotation == 0
    assert g.word_recall(TEXT, result.text) >= g.word_recall(TEXT, upright.text)
    assert result.layout["skew"] == result.skew
    assert result.width > 1275 and result.height > 1650  # the canvas grew to hold it


def test_deskew_off_measures_nothing() -> None:
    result = run("image", png(g.text_image(TEXT, rotate=2.0, **SMALL)), deskew=False)
    assert result.skew is None and "deskew" not in result.timings
    assert (result.width, result.height) == (1275, 1650)


# -- OCR modes and the text-layer check -------------------------------------------------------


@pytest.mark.parametrize("layer", sorted(g.WRONG_LAYERS))
def test_auto_rejects_a_garbage_text_layer_and_ocrs(layer: str) -> None:
    result = run("pdf", g.wrong_layer_pdf(TEXT, layer=layer), render_dpi=150)
    assert result.text_source == "ocr" and result.engine.startswith("tesseract")
    assert result.text_source_reason.startswith("text layer rejected: ")
    assert g.word_recall(TEXT, result.text) >= 0.95
    assert result.layout is not None and result.layout["dpi"] == 150


def test_text_only_keeps_even_a_garbage_text_layer() -> None:
    result = run("pdf", g.wrong_layer_pdf(TEXT, layer="cjk"), ocr_mode="text-only")
    assert result.text_source == "text-layer" and result.engine == "pdf-text-layer"
    assert "ocr" not in result.timings and "render" not in result.timings
    assert "text-only mode" in result.text_source_reason
    assert "text layer rejected" in result.text_source_reason
    assert "䐀攀愀爀" in result.text  # "Dear", as the broken font maps it
    assert result.layout is None and not result.needs_review


def test_text_only_does_not_ocr_image_pages() -> None:
    result = run("image", png(g.text_image(TEXT, **SMALL)), ocr_mode="text-only")
    assert result.text == "" and result.text_source == ""
    assert result.text_source_reason == "text-only mode: image pages are not OCR'd"
    assert "ocr" not in result.timings and result.thumbnail
    assert not result.needs_review


def test_auto_uses_a_good_text_layer_and_force_ocrs_it() -> None:
    data = g.text_pdf([TEXT])
    auto = run("pdf", data)
    assert auto.text_source == "text-layer" and auto.engine == "pdf-text-layer"
    assert auto.text_source_reason.startswith("text layer passed the check (")
    assert auto.layout is None and auto.confidence is None and not auto.needs_review
    forced = run("pdf", data, ocr_mode="force", render_dpi=150)
    assert forced.text_source == "ocr" and forced.engine.startswith("tesseract")
    assert forced.text_source_reason == "ocr mode force"
    assert g.word_recall(TEXT, forced.text) >= 0.95
    assert "text_layer" not in forced.timings  # force does not even read the layer


def test_scanned_pdf_says_it_had_no_text_layer() -> None:
    data = g.scanned_pdf([g.text_image(TEXT, **SMALL)], dpi=150)
    result = run("pdf", data, render_dpi=150)
    assert result.text_source == "ocr" and result.text_source_reason == "no text layer"


def test_unknown_ocr_mode_fails_the_page() -> None:
    inp = PageInput(1, "pdf", g.text_pdf([TEXT]), "a.pdf page 1", ocr_mode="sometimes")
    result = process_page(inp)
    assert not result.ok
    assert result.error == (
        "a.pdf page 1: unknown OCR mode 'sometimes'; use one of auto, force, text-only"
    )


REAL = {
    "English": " ".join(g.SAMPLE_TEXTS[:3]),
    "German": "Sehr geehrte Damen und Herren, wir bestätigen den Eingang Ihrer Bestellung "
    "vom 12. März und werden die Ware in der nächsten Woche ausliefern. Für Rückfragen "
    "stehen wir Ihnen gerne zur Verfügung. Mit freundlichen Grüßen, Ihre Buchhaltung.",
    "Czech": "Vážený pane, dovolujeme si Vás pozvat na setkání, které se uskuteční ve "
    "čtvrtek v Brně. Prosíme o potvrzení účasti do konce měsíce. Strč prst skrz krk.",
    "Russian": "Все люди рождаются свободными и равными в своем достоинстве и правах. Они "
    "наделены разумом и совестью и должны поступать в отношении друг друга в духе братства.",
    "Chinese": "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神"
    "相对待。\n人人有资格享有本宣言所载的一切权利和自由，不分种族、肤色、性别、语言、宗教。",
    "Japanese": "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等で"
    "ある。人間は、理性と良心とを授けられており、互いに同胞の精神をもって行動しなければならない。",
    "Korean": "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다. 인간은 "
    "천부적으로 이성과 양심을 부여받았으며 서로 형제애의 정신으로 행동하여야 한다.",
    "Chinese with English": "我们使用 Python 和 PostgreSQL 开发了这个系统。该系统每天处理"
    "超过一万份文件，并支持中文和英文的全文检索。",
    "English and Russian": g.SAMPLE_TEXTS[1] + " Все люди рождаются свободными и равными.",
    "table of contents": "Contents\nIntroduction .................... 1\nThe early years "
    "............... 7\nLetters from the coast ........ 23\nIndex ...................... 301",
    "figures": "Item Qty Price\n1042 12 3.50\n1043 7 12.00\n1044 150 0.25\nTotal 169 1234.56",
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_text_check_passes_real_text(name: str) -> None:
    verdict = check(REAL[name])
    assert verdict.ok, verdict.reason
    assert verdict.reason.startswith("text layer passed the check (")


ENGLISH = REAL["English"]


def _letters(fn) -> str:
    """ENGLISH with each letter ``c`` (the ``i``-th character) replaced by ``fn(i, c)``."""
    return "".join(fn(i, c) if c.isalpha() else c for i, c in enumerate(ENGLISH))


def _shift(c: str, by: int) -> str:
    base = ord("a") if c.islower() else ord("A")
    return chr((ord(c) - base + by) % 26 + base)


GARBAGE = {  # name: (text layer, what the reason says)
    "private use": (_letters(lambda i, c: chr(0xE000 + ord(c))), "private-use/unmapped"),
    "replacement characters": (re.sub("[aeiost]", "\ufffd", ENGLISH), "private-use/unmapped"),
    "UTF-16 bytes swapped": (_letters(lambda i, c: chr(ord(c) << 8)), "space-separated runs"),
    "swapped, spaces lost": (
        "".join(chr(ord(c) << 8) for c in ENGLISH if c != " "),
        "ideographs of only",
    ),
    "punctuation soup": (_letters(lambda i, c: "!#$%&*+"[ord(c) % 7]), "letters and digits"),
    "three scripts": (_letters(lambda i, c: "aиκ"[i % 3]), "mix 3 scripts"),
    "Latin and Cyrillic in words": (
        _letters(lambda i, c: chr(ord(c) + 0x3CF) if c in "aeo" else c),
        "look like words",
    ),
    "letters shifted": (_letters(lambda i, c: _shift(c, 3)), "vowels"),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_text_check_rejects_garbage(name: str) -> None:
    text, why = GARBAGE[name]
    verdict = check(text)
    assert not verdict.ok
    assert verdict.reason.startswith("text layer rejected: ") and why in verdict.reason


def test_text_check_calls_a_few_characters_no_text_layer() -> None:
    assert check("").reason == "no text layer"
    assert check("- 12 -").reason == "no text layer (2 letters and digits)"
    assert check("Page 12 of 40", min_chars=5).ok


# -- review flags ----------------------------------------------------------------------------


def test_low_contrast_page_is_flagged_for_review(upright: PageResult) -> None:
    result = run("image", png(g.low_contrast_image(TEXT)))
    assert result.text_source == "ocr" and result.rotation == 0
    assert result.confidence < 60 and result.words > 20
    assert result.needs_review
    assert result.review_reason == f"mean confidence {result.confidence:.1f} is under 60"
    assert not upright.needs_review and upright.review_reason is None
    lenient = run("image", png(g.low_contrast_image(TEXT)), review_threshold=30)
    assert not lenient.needs_review


def test_page_without_text_is_flagged_for_review() -> None:
    result = run("image", png(Image.new("L", (1275, 1650), 255)))
    assert result.text == "" and result.needs_review
    assert result.review_reason == "OCR found no text"
    assert result.rotation == 0 and result.skew is None  # nothing to measure either


# -- word boxes ------------------------------------------------------------------------------


def test_layout_holds_every_word_with_its_box(upright: PageResult) -> None:
    layout = upright.layout
    assert (layout["width"], layout["height"], layout["dpi"]) == (1275, 1650, 150)
    words = layout["words"]
    assert len(words) == upright.words == len(upright.text.split())
    assert [w[0] for w in words] == upright.text.split()
    for text, x0, y0, x1, y1, conf, block, par, line in words:
        assert 0 <= x0 < x1 <= 1275 and 0 <= y0 < y1 <= 1650, text
        assert 0 <= conf <= 100 and round(conf, 1) == conf
        assert block >= 1 and par >= 1 and line >= 1
    lines = [w[8] for w in words]
    assert lines == sorted(lines) and lines[0] == 1 and lines[-1] == len(set(lines))
    found = {w[0]: w[1:5] for w in words}
    for word in ("Dear", "Margaret,", "Tuesday", "square"):
        drawn = g.word_box(TEXT, word, **SMALL)
        assert all(abs(a - b) <= 4 for a, b in zip(found[word], drawn, strict=True)), word
    assert sum(w[5] for w in words) / len(words) == pytest.approx(upright.confidence, abs=0.1)


def test_layout_of_a_straightened_page_fits_its_grown_canvas() -> None:
    result = run("image", png(g.text_image(TEXT, rotate=3.0, **SMALL)))
    dx, dy = (result.width - 1275) / 2, (result.height - 1650) / 2
    found = {w[0]: w[1:5] for w in result.layout["words"]}
    x0, y0, x1, y1 = g.word_box(TEXT, "Tuesday", **SMALL)
    assert all(
        abs(a - b) <= 5
        for a, b in zip(found["Tuesday"], (x0 + dx, y0 + dy, x1 + dx, y1 + dy), strict=True)
    )


def test_a_short_upside_down_page_is_turned_though_osd_is_unsure() -> None:
    """One sentence gives OSD little to go on (its confidence is under ORIENT_MIN_CONF);
    the first reading is hopeless, so the turn is tried and kept."""
    from pagekit import samples

    short = "The harbour master signed the tide book at dawn before the ships left."
    upright = Image.open(io.BytesIO(samples.page_image(short))).convert("L")
    straight = run("image", png(upright))
    turned = run("image", png(upright.rotate(180, expand=True)))
    assert turned.rotation == 180
    assert turned.text.split() == straight.text.split()
    assert turned.confidence > straight.confidence - 3
