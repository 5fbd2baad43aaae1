"""Text screening: find the names of known people in a post, however they are spelt.

Text and names are folded the same way before matching: NFKC (full-width and mathematical
letters become plain ones), invisible format characters removed (zero-width spaces, soft
hyphens, bidi controls), common Cyrillic and Greek look-alikes mapped to Latin, accents
dropped, case folded, and every dash treated as a space. A name is found on word boundaries
with an optional possessive, hyphenated and double names also joined up ("AmeliaRose"), and
inside hashtags and @mentions ("#WellDoneNadia").

Characters that hide or disguise text (invisible format characters between letters, words
mixing Latin with Cyrillic or Greek letters, terminal control codes) are themselves reported,
because the approver cannot see what they do.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Cyrillic and Greek letters that look like Latin ones (lower case; text is case-folded first).
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ζ": "z",
})  # fmt: skip
_DASHES = re.compile(r"[\-\u2010-\u2015\u2212\u2e3a\u2e3b\ufe58\ufe63\uff0d_]+")
_TAGS = re.compile(r"[#@](\w+)")
_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def fold(text: str) -> str:
    """The comparable form of a text or a name (see the module docstring)."""
    t = unicodedata.normalize("NFKC", text)
    t = "".join(ch for ch in t if unicodedata.category(ch) != "Cf")
    t = t.casefold().translate(_CONFUSABLES)
    t = "".join(ch for ch in unicodedata.normalize("NFKD", t) if not unicodedata.combining(ch))
    return " ".join(_DASHES.sub(" ", t).split())


@lru_cache(maxsize=8192)
def _pattern(folded_name: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in folded_name.split())
    return re.compile(rf"(?<!\w){words}(?:['\u2019]s?)?(?!\w)")


def variants(name: str) -> set[str]:
    """Folded spellings of one name: as written, and with its hyphenated parts joined."""
    folded = fold(name)
    out = {folded} if folded else set()
    if _DASHES.search(unicodedata.normalize("NFKC", name)):
        out.add(folded.replace(" ", ""))
        first_part = _DASHES.split(name.strip().split()[0])[0]
        if fold(first_part):
            out.add(fold(first_part))
    return out


def mentions(text: str, names: tuple[str, ...]) -> bool:
    """Whether any of the names appears in the text."""
    folded = fold(text)
    tags = [fold(t).replace(" ", "") for t in _TAGS.findall(unicodedata.normalize("NFKC", text))]
    for name in names:
        for v in variants(name):
            if _pattern(v).search(folded):
                return True
            squashed = v.replace(" ", "")
            if len(squashed) >= 3 and any(squashed in tag for tag in tags):
                return True
    return False


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else ""


def disguises(text: str) -> list[str]:
    """What in the text hides or disguises characters; empty for ordinary text."""
    found: list[str] = []
    t = unicodedata.normalize("NFC", text)
    for i, ch in enumerate(t):
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in _ALLOWED_CONTROLS:
            found.append(f"control character U+{ord(ch):04X}")
        elif cat == "Cf":
            between_letters = 0 < i < len(t) - 1 and t[i - 1].isalpha() and t[i + 1].isalpha()
            if ch != "\u200d" or between_letters:  # a zero-width joiner inside an emoji is ordinary
                found.append(f"invisible character U+{ord(ch):04X} ({unicodedata.name(ch, 'format')})")
    for word in re.findall(r"\w+", t):
        scripts = {_script(ch) for ch in word if ch.isalpha()} & {"LATIN", "CYRILLIC", "GREEK"}
        if len(scripts) > 1:
            found.append(f"a word mixing {' and '.join(sorted(s.title() for s in scripts))} letters")
    return list(dict.fromkeys(found))


def visible(text: str) -> str:
    """Text for a terminal: control and invisible characters shown as <U+XXXX>."""
    out = []
    for ch in text:
        if (unicodedata.category(ch) in ("Cc", "Cf") and ch not in _ALLOWED_CONTROLS) or ch == "\r":
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)
