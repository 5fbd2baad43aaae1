"""Canonical JSON (RFC 8785) for everything that is signed or hashed, and a strict reader.

Signed bytes are produced once and kept; verification reads the exact bytes, never a
re-serialisation. The reader rejects duplicate keys and non-integer numbers, because
`json.loads` silently keeps the last of two equal keys.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785


class CanonicalError(ValueError):
    pass


def _check(value: Any, path: str = "$") -> None:
    if isinstance(value, float):
        raise CanonicalError(f"{path}: numbers must be integers")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalError(f"{path}: keys must be strings")
            _check(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check(v, f"{path}[{i}]")


def dumps(value: Any) -> bytes:
    """RFC 8785 bytes of value; integers only."""
    _check(value)
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalError(str(exc)) from None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise CanonicalError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_float(text: str) -> Any:
    raise CanonicalError(f"non-integer number {text}")


def _no_constant(text: str) -> Any:
    raise CanonicalError(f"{text} is not JSON")


def loads(data: bytes | str) -> Any:
    """Parse JSON strictly: no duplicate keys, no floats, no NaN/Infinity."""
    try:
        return json.loads(data, object_pairs_hook=_pairs, parse_float=_no_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CanonicalError(f"not valid JSON: {exc.msg} at position {exc.pos}") from None
    except UnicodeDecodeError:
        raise CanonicalError("not valid UTF-8") from None
