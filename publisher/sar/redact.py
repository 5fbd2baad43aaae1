"""Keep other people out of a SAR pack: their names, aliases and register ids become a marker.

Pure. The requester's own names are never redacted, even when another person shares them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MARKER = "[another person]"


def _terms_of(name: str, aliases: Iterable[str]) -> list[str]:
    names = [name, *aliases]
    parts = name.split()
    if len(parts) > 1:
        names.append(parts[0])
    return [n.strip() for n in names if n.strip()]


@dataclass
class Redactor:
    """Replaces the given other people's names and ids in strings; counts what it replaced."""

    own: tuple[str, ...] = ()
    count: int = 0
    _patterns: list[re.Pattern[str]] = field(default_factory=list)

    def add(self, subject_id: str, name: str, aliases: Iterable[str]) -> None:
        mine = {o.casefold() for o in self.own}
        terms = sorted({t for t in _terms_of(name, aliases) if t.casefold() not in mine}, key=len, reverse=True)
        for term in terms:
            words = r"\s+".join(re.escape(w) for w in term.split())
            self._patterns.append(re.compile(rf"(?<!\w){words}(?:['\u2019]s)?(?!\w)", re.IGNORECASE))
        self._patterns.append(re.compile(rf"(?<![\w-]){re.escape(subject_id)}(?![\w-])"))
        self._patterns.sort(key=lambda p: len(p.pattern), reverse=True)

    def text(self, value: str) -> str:
        for pattern in self._patterns:
            value, n = pattern.subn(MARKER, value)
            self.count += n
        return value

    def value(self, value: Any) -> Any:
        """Redact every string inside dicts and lists (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def own_terms(name: str, aliases: Iterable[str]) -> tuple[str, ...]:
    return tuple(_terms_of(name, aliases))
