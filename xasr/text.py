"""Text normalisers applied to references and hypotheses alike before scoring.

`EnglishTextNormalizer` follows the idea of OpenAI Whisper's English normaliser in a smaller,
readable form; `ChineseTextNormalizer` prepares text for character error rate.
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Callable, Iterable, Optional

Normalizer = Callable[[str], str]

_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS" or char in string.punctuation


class IdentityNormalizer:
    """Leaves the text as it is (tokens are still split on whitespace when scoring)."""

    def __call__(self, text: str) -> str:
        return text


class BasicTextNormalizer:
    """Lowercase; apostrophes dropped ("don't" -> "dont"); other punctuation and symbols become spaces."""

    def __call__(self, text: str) -> str:
        text = text.lower().replace("\u2019", "").replace("'", "")
        return " ".join("".join(" " if _is_punctuation(c) else c for c in text).split())


class ChineseTextNormalizer:
    """NFKC (full width -> half width), no punctuation (Chinese or ASCII), no whitespace, Latin uppercased."""

    def __call__(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        return "".join(c for c in text if not c.isspace() and not _is_punctuation(c)).upper()


_SPOKEN_SYMBOLS = set("%$&+@#\u00a3\u20ac")  # said aloud ("percent", "dollars", "and", ...)
_SPOKEN_MARKS = re.compile(r"(?<=\d)[.,](?=\d)|(?<=[^\W\d_])'(?=[^\W\d_])")  # "3.5", "1,000", "don't"


class SpokenTextNormalizer:
    """Keeps what is said: case, words, numbers and symbols read aloud; drops the punctuation nobody
    says. Apostrophes stay inside words ("don't", "John's"), a "." or "," inside a number stays ("3.5",
    "1,000"), dashes and hyphens become spaces ("sixty-three" -> "sixty three")."""

    def __call__(self, text: str) -> str:
        text = text.replace("\u2019", "'")
        kept = {m.start() for m in _SPOKEN_MARKS.finditer(text)}
        return " ".join("".join(" " if i not in kept and _is_punctuation(c) and c not in _SPOKEN_SYMBOLS else c
                                for i, c in enumerate(text)).split())


_FILLERS = {"hmm", "hm", "mm", "mmm", "mhm", "uh", "uhm", "um", "umm", "er", "erm"}

# Applied in order on the lowercased text, while apostrophes are still there.
_CONTRACTIONS = [
    (r"\bwon't\b", "will not"),
    (r"\bcan't\b", "can not"),
    (r"\bshan't\b", "shall not"),
    (r"\blet's\b", "let us"),
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'ll\b", " will"),
    (r"'ve\b", " have"),
    (r"'m\b", " am"),
    (r"'d\b", " would"),
    # "'s" is "is" only after these; elsewhere it is a possessive and the apostrophe is dropped
    (r"\b(it|that|what|there|here|he|she|who|where|how)'s\b", r"\1 is"),
]
_CONTRACTIONS = [(re.compile(pattern), replacement) for pattern, replacement in _CONTRACTIONS]

# Word -> standard form: a few common British spellings, abbreviations and variants.
_SPELLINGS = {
    "colour": "color", "colours": "colors", "favour": "favor", "favourite": "favorite",
    "honour": "honor", "labour": "labor", "neighbour": "neighbor", "neighbours": "neighbors",
    "behaviour": "behavior", "humour": "humor", "harbour": "harbor", "centre": "center",
    "metre": "meter", "metres": "meters", "theatre": "theater", "realise": "realize",
    "realised": "realized", "organise": "organize", "organised": "organized",
    "recognise": "recognize", "recognised": "recognized", "analyse": "analyze",
    "travelled": "traveled", "travelling": "traveling", "cancelled": "canceled",
    "grey": "gray", "programme": "program", "defence": "defense", "catalogue": "catalog",
    "dialogue": "dialog", "jewellery": "jewelry", "cheque": "check", "tyre": "tire",
    "cannot": "can not", "mr": "mister", "mrs": "missus", "dr": "doctor",
}

_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}


def _read_number(words: list[str], start: int) -> tuple[Optional[int], int]:
    """The longest well-formed cardinal at `words[start:]`: (value, number of words used).

    A word that cannot continue the number ends it, so "eighteen eighteen" is two numbers
    and "one hundred and five" is one; "and" only joins after hundred/thousand/... .
    """
    total, current, last, scale = 0, 0, None, None  # last: kind of the last number word
    i = end = start
    while i < len(words):
        j = i
        if words[i] == "and" and last in ("hundred", "scale") and i + 1 < len(words):
            j = i + 1
        word = words[j]
        if word in _SMALL:
            n = _SMALL[word]
            if last in ("small", "zero") or (n == 0 and last is not None):
                break
            if last == "tens" and n >= 10:
                break
            current += n
            last = "zero" if n == 0 else "small"
        elif word in _TENS:
            if last in ("small", "tens", "zero"):
                break
            current += _TENS[word]
            last = "tens"
        elif word == "hundred" and j == i:
            if last not in (None, "small", "tens") or current >= 100:
                break
            current = (current or 1) * 100
            last = "hundred"
        elif word in _SCALES and j == i:
            if last in ("scale", "zero") or (scale is not None and _SCALES[word] >= scale):
                break
            scale = _SCALES[word]
            total += (current or 1) * scale
            current = 0
            last = "scale"
        else:
            break
        i = end = j + 1
    if end == start:
        return None, 0
    return total + current, end - start


def _numbers_to_digits(words: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(words):
        value, used = _read_number(words, i)
        if used:
            out.append(str(value))
            i += used
        else:
            out.append(words[i])
            i += 1
    return out


class EnglishTextNormalizer:
    """Whisper-style English normalisation, so that e.g. "Twenty-one, Colour!" and "21 color" match.

    Steps: lowercase; drop text in [brackets], (parentheses) and <angle brackets>; expand common
    contractions; strip accents; drop other apostrophes ("john's" -> "johns"); "1,000" -> "1000";
    punctuation and symbols become spaces except a "." inside a number ("3.5"); drop fillers
    (um, uh, hmm, ...); standardise a few spellings (British -> American, mr -> mister);
    spelled-out cardinals become digits. Each maximal well-formed cardinal becomes one number
    ("twenty one" -> "21", "one hundred and five" -> "105", "zero" -> "0"), and a word that cannot
    continue it starts the next one: "eighteen eighteen" -> "18 18", "one two three" -> "1 2 3".
    """

    def __call__(self, text: str) -> str:
        text = _BRACKETED.sub(" ", text.lower().replace("\u2019", "'"))
        for pattern, replacement in _CONTRACTIONS:
            text = pattern.sub(replacement, text)
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c)).replace("'", "")
        text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
        text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
        text = "".join(" " if c != "." and _is_punctuation(c) else c for c in text)
        words = []
        for word in text.split():
            if word not in _FILLERS:
                words.extend(_SPELLINGS.get(word, word).split())
        return " ".join(_numbers_to_digits(words))


NORMALIZERS = {
    "english": EnglishTextNormalizer,
    "chinese": ChineseTextNormalizer,
    "basic": BasicTextNormalizer,
    "spoken": SpokenTextNormalizer,
    "none": IdentityNormalizer,
}


def get_normalizer(name: str) -> Normalizer:
    """The normaliser called `name`: one of english, chinese, basic, spoken, none."""
    if name not in NORMALIZERS:
        raise ValueError(f"unknown normalizer '{name}'; choose one of {', '.join(NORMALIZERS)}")
    return NORMALIZERS[name]()


def is_chinese(texts: Iterable[str]) -> bool:
    """True when most tokens in `texts` are CJK characters (each other word counts as one token)."""
    cjk = other = 0
    for text in texts:
        cjk += len(_CJK.findall(text))
        other += len(re.findall(r"[^\W_]+", _CJK.sub(" ", text)))
    return cjk > other
