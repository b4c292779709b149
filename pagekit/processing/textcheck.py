"""Is a PDF's text layer real text? A cheap check before trusting it instead of OCR.

A text layer can be garbage while the page looks fine: a font whose characters map to
the wrong code points (no or a broken ``/ToUnicode``), UTF-16 read with its bytes swapped
(``"Dear"`` becomes ``"䐀攀愀爀"``), or a bad OCR layer someone added before. :func:`check`
rejects a layer, in this order, when (white space aside):

1. over 10% of its characters are junk: private use (U+E000-F8FF and the private planes),
   unassigned, surrogates, control characters or U+FFFD, what unmapped glyphs become;
2. under half its characters are letters or digits (a run of one punctuation character,
   like the dot leaders of a table of contents, counts once);
3. it has fewer than ``min_chars`` letters and digits: no text layer to speak of (rules 1
   and 2 only judge layers of ``min_chars`` characters or more);
4. its letters mix three scripts or more, each over 10% (one or two scripts pass: an
   English-Russian parallel text is real);
5. CJK ideographs stand in space-separated runs (over one "ideograph space ideograph" per
   12 ideographs; Chinese and Japanese put no spaces between words), or 200 ideographs or
   more use at most 60 distinct ones (an alphabet mapped onto CJK code points);
6. under 60% of its words (tokens of 2+ letters and no digits, at least 10 of them) look
   like words: one script, at most 3 changes of case (``Word``, ``WORD``, ``McDonald``, not
   ``aBcDe``) and, in Latin, Cyrillic and Greek words of 4+ letters not all in capitals, a
   vowel;
7. its Latin letters (at least 100) are under 20% or over 70% vowels (text in a Latin-script
   language has 30-50%; letters mapped onto other letters do not).

It looks each distinct character up in :mod:`unicodedata` once and judges each distinct
word once (recent words are remembered across pages, which repeat them): about 0.2-1 ms for
a page of 1,500 characters, a fraction of what reading the page costs. It is no language
model: letters swapped for other letters in a way that keeps the share of vowels (ROT13)
pass, and so does rAnDoM cAsE. A layer it rejects is OCR'd in mode "auto"; the verdict's
reason is stored with the page either way.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

MAX_JUNK = 0.10
MIN_ALNUM = 0.50
MAX_SCRIPTS = 2  # scripts with over SCRIPT_MIN_SHARE of the letters a real page may mix
SCRIPT_MIN_SHARE = 0.10
MAX_SPACED_IDEOGRAPHS = 1 / 12
ALPHABET_IDEOGRAPHS = (200, 60)  # this many ideographs or more, with at most this many kinds
MIN_WORDLIKE = 0.60
MAX_CASE_CHANGES = 3
MIN_WORDS_JUDGED = 10
VOWEL_RANGE = (0.20, 0.70)
MIN_LATIN_FOR_VOWELS = 100

_VOWELS = {
    "LATIN": frozenset("aeiouy"),
    "CYRILLIC": frozenset("аеёиоуыэюяіїєў"),
    "GREEK": frozenset("αεηιουω"),
}
_CASED = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "GEORGIAN"})
# Scripts that one language mixes freely: Japanese writes kanji, hiragana and katakana.
_FAMILY = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "BOPOMOFO": "CJK"}
_NAMES = {
    "LATIN": "Latin",
    "CJK": "CJK",
    "CYRILLIC": "Cyrillic",
    "GREEK": "Greek",
    "ARABIC": "Arabic",
    "HEBREW": "Hebrew",
}
_REPEATS = re.compile(r"([^\w\s])\1{2,}")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


@dataclass(frozen=True)
class Verdict:
    """What :func:`check` found: ``ok``, a one-line ``reason``, and the figures behind it."""

    ok: bool
    reason: str
    chars: int = 0  # characters other than white space
    alnum: int = 0  # letters and digits among them
    letters: float = 0.0  # share of letters
    junk: float = 0.0  # share of private-use, unassigned, control, surrogate, U+FFFD
    script: str = ""  # the script most letters are in, e.g. "Latin", "CJK"
    wordlike: float | None = None  # share of word-like tokens; None: too few to judge
    vowels: float | None = None  # share of vowels among Latin letters; None: too few


@functools.lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    """The script of a letter, from its Unicode name ("LATIN", "CJK", "HANGUL"...);
    "" for modifier letters, which go with any script."""
    if unicodedata.category(ch) == "Lm":
        return ""
    words = unicodedata.name(ch, "").split()
    if words and words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1:
        return words[1]
    return words[0] if words else ""


def _family(script: str) -> str:
    return _FAMILY.get(script, script)


def _is_ideograph(ch: str) -> bool:
    return _script(ch) == "CJK"


def _is_junk(ch: str) -> bool:
    return ch == "\ufffd" or unicodedata.category(ch) in ("Co", "Cn", "Cs", "Cc")


def _base(ch: str) -> str:
    """The letter without its accents, lower case: ``"É"`` -> ``"e"``."""
    return unicodedata.normalize("NFD", ch)[0].lower()


def _wordlike(letters: str) -> bool | None:
    """Whether a token's letters look like a word; None when it cannot be told."""
    families = {_family(_script(ch)) for ch in letters} - {""}
    if len(families) != 1:
        return not families  # modifier letters only: cannot tell
    (family,) = families
    if family not in _CASED:
        return True
    cases = [ch.isupper() for ch in letters if ch.isupper() or ch.islower()]
    if sum(a != b for a, b in zip(cases, cases[1:], strict=False)) > MAX_CASE_CHANGES:
        return False  # "aBcDe"; "McDonald", "iPhone", "PhD" change case 2-3 times
    vowels = _VOWELS.get(family)
    if vowels is None or len(letters) < 4 or letters.isupper():
        return True  # "Mr", "St", "BBC": short words and acronyms need no vowel
    return any(_base(ch) in vowels for ch in letters)


@functools.lru_cache(maxsize=16384)
def _judge(token: str) -> bool | None:
    """Whether a token (edge punctuation and all) looks like a word; None when it is not
    judged (it has digits, or fewer than 2 letters). Cached: pages repeat their words."""
    token = _EDGE_PUNCT.sub("", token)
    if any(ch.isdigit() for ch in token):
        return None
    letters = "".join(ch for ch in token if ch.isalpha())
    if len(letters) < 2:
        return None
    return _wordlike(letters)


def _figures(words: list[str]) -> tuple[int, int]:
    judged = wordlike = 0
    for token, n in Counter(words).items():
        verdict = _judge(token)
        if verdict is not None:
            judged += n
            wordlike += n * verdict
    return judged, wordlike


def _spaced_ideographs(text: str) -> int:
    """How often an ideograph, white space other than a line break, and an ideograph follow
    each other."""
    count = 0
    for match in re.finditer(r"[^\S\n]+", text):
        start, end = match.span()
        if 0 < start and end < len(text) and _is_ideograph(text[start - 1]):
            count += _is_ideograph(text[end])
    return count


def check(text: str, min_chars: int = 20) -> Verdict:
    """Whether ``text``, a page's text layer, is real text worth using instead of OCR
    (see the module docstring for the rules)."""
    compact = _REPEATS.sub(r"\1", "".join(text.split()))
    chars = len(compact)
    if not chars:
        return Verdict(False, "no text layer")
    # Each distinct character is looked at once, with its count (in order of first use).
    counts = Counter(compact)
    alnum = sum(n for ch, n in counts.items() if ch.isalnum())
    letter_counts = {ch: n for ch, n in counts.items() if ch.isalpha()}
    junk = sum(n for ch, n in counts.items() if _is_junk(ch)) / chars
    figures = {
        "chars": chars,
        "alnum": alnum,
        "letters": sum(letter_counts.values()) / chars,
        "junk": junk,
    }
    if chars >= min_chars and junk > MAX_JUNK:
        return Verdict(
            False, f"text layer rejected: {junk:.0%} private-use/unmapped characters", **figures
        )
    if chars >= min_chars and alnum / chars < MIN_ALNUM:
        return Verdict(
            False, f"text layer rejected: only {alnum / chars:.0%} letters and digits", **figures
        )
    if alnum < min_chars:
        return Verdict(False, f"no text layer ({alnum} letters and digits)", **figures)
    families: Counter[str] = Counter()
    for ch, n in letter_counts.items():
        if family := _family(_script(ch)):
            families[family] += n
    total = sum(families.values()) or 1
    main, _ = families.most_common(1)[0] if families else ("", 0)
    figures["script"] = _NAMES.get(main, main.title())
    mixed = [(f, n / total) for f, n in families.most_common() if n / total > SCRIPT_MIN_SHARE]
    if len(mixed) > MAX_SCRIPTS:
        shares = ", ".join(f"{share:.0%} {_NAMES.get(f, f.title())}" for f, share in mixed)
        return Verdict(
            False, f"text layer rejected: letters mix {len(mixed)} scripts ({shares})", **figures
        )
    ideographs = {ch: n for ch, n in letter_counts.items() if _is_ideograph(ch)}
    if ideographs:
        many = sum(ideographs.values())
        spaced = _spaced_ideographs(text)
        if spaced > MAX_SPACED_IDEOGRAPHS * many:
            return Verdict(
                False,
                f"text layer rejected: CJK ideographs in space-separated runs ({spaced} "
                f"spaces between {many} ideographs), like letters mapped to CJK",
                **figures,
            )
        least, most_kinds = ALPHABET_IDEOGRAPHS
        kinds = len(ideographs)
        if many >= least and kinds <= most_kinds:
            return Verdict(
                False,
                f"text layer rejected: {many} CJK ideographs of only {kinds} "
                "kinds, like an alphabet mapped to CJK",
                **figures,
            )
    judged, wordlike = _figures(text.split())
    figures["wordlike"] = wordlike / judged if judged >= MIN_WORDS_JUDGED else None
    if figures["wordlike"] is not None and figures["wordlike"] < MIN_WORDLIKE:
        return Verdict(
            False,
            f"text layer rejected: only {figures['wordlike']:.0%} of {judged} words look "
            "like words",
            **figures,
        )
    latin = {ch: n for ch, n in letter_counts.items() if _script(ch) == "LATIN"}
    if sum(latin.values()) >= MIN_LATIN_FOR_VOWELS:
        vowels = sum(n for ch, n in latin.items() if _base(ch) in _VOWELS["LATIN"])
        figures["vowels"] = vowels / sum(latin.values())
        low, high = VOWEL_RANGE
        if not low <= figures["vowels"] <= high:
            return Verdict(
                False,
                f"text layer rejected: {figures['vowels']:.0%} of its Latin letters are "
                "vowels (real text has 30-50%)",
                **figures,
            )
    wordlike_part = (
        f", {figures['wordlike']:.0%} word-like" if figures["wordlike"] is not None else ""
    )
    return Verdict(
        True,
        f"text layer passed the check ({chars} chars, {figures['letters']:.0%} letters"
        f"{wordlike_part})",
        **figures,
    )
