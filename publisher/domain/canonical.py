"""RFC 8785 (JCS) canonical JSON for everything signed or hashed, and a strict parser.

Signed bytes are produced once and kept; verification reads the exact bytes, never a
re-serialisation.

Only what JCS and I-JSON treat the same everywhere is admitted: objects with string keys,
arrays, strings, booleans, null and integers within +/-(2**53 - 1). Floats are refused on
both sides (their JCS spelling surprises people: ``1.0`` becomes ``1``). The parser rejects
duplicate keys (``json.loads`` would silently keep the last one), floats and the non-JSON
constants ``NaN`` / ``Infinity``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import rfc8785


class CanonicalError(ValueError):
    """JSON that is not admitted: a float, a duplicate key, a huge integer, not canonical."""


SCHEMA_VERSION = 1
VERSION_KEY = "v"
MAX_SAFE_INTEGER = 2**53 - 1


def encode(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value``; raises CanonicalError for floats and other non-JSON.

    When every object key is ASCII, RFC 8785 and ``json.dumps(sort_keys=True, compact,
    ensure_ascii=False)`` write the same bytes (same key order, same string escapes, integers
    only), and the latter is ten times faster; a property test holds the two together.
    """
    if _check(value, "$"):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let rfc8785 refuse it
    try:
        return bytes(rfc8785.dumps(value))
    except (ValueError, TypeError) as exc:
        raise CanonicalError(f"cannot canonicalise JSON: {exc}") from exc


def encode_versioned(body: Mapping[str, Any], version: int = SCHEMA_VERSION) -> bytes:
    """``encode`` of ``body`` with the schema version field ``"v"`` set."""
    if VERSION_KEY in body and body[VERSION_KEY] != version:
        raise CanonicalError(f"body already carries schema version {body[VERSION_KEY]!r}, not {version}")
    return encode({**body, VERSION_KEY: version})


def _check(value: Any, path: str) -> bool:
    """Refuse what is not admitted; return whether every object key below is ASCII."""
    try:
        return _ascii_keys(value)
    except _Refused:
        return _explain(value, path)  # walk again, naming the path (only when refusing)


class _Refused(Exception):
    pass


def _ascii_keys(value: Any) -> bool:
    """The hot path of ``_check``: no path strings built unless something is refused."""
    if value is None or value is True or value is False or type(value) is str:
        return True
    if type(value) is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise _Refused
        return True
    if type(value) is dict:
        ascii_keys = True
        for key, item in value.items():
            if type(key) is not str:
                raise _Refused
            if not _ascii_keys(item) or not key.isascii():
                ascii_keys = False
        return ascii_keys
    if type(value) is list or type(value) is tuple:
        ascii_keys = True
        for item in value:
            if not _ascii_keys(item):
                ascii_keys = False
        return ascii_keys
    raise _Refused  # anything else (a float, a subclass, a Mapping): the slow walk decides


def _explain(value: Any, path: str) -> bool:
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalError(f"integer at {path} is outside +/-(2**53 - 1)")
        return True
    if isinstance(value, float):
        raise CanonicalError(f"float at {path}: only integers are allowed")
    ascii_keys = True
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"non-string key {key!r} at {path}")
            ascii_keys = _explain(item, f"{path}.{key}") and ascii_keys and key.isascii()
        return ascii_keys
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            ascii_keys = _explain(item, f"{path}[{i}]") and ascii_keys
        return ascii_keys
    raise CanonicalError(f"value of type {type(value).__name__} at {path} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a key came twice: name it
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise CanonicalError(f"duplicate JSON key {key!r}")
            seen.add(key)
    return out


def _no_float(text: str) -> NoReturn:
    raise CanonicalError(f"float {text} in JSON: only integers are allowed")


def _safe_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise CanonicalError(f"integer {text} is outside +/-(2**53 - 1)")
    return value


def _no_constant(text: str) -> NoReturn:
    raise CanonicalError(f"{text} is not JSON")


_decoder = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_float=_no_float, parse_int=_safe_int, parse_constant=_no_constant
)


def parse(data: bytes | str, *, require_canonical: bool = False) -> Any:
    """Parse JSON strictly. With ``require_canonical`` the bytes must be exactly RFC 8785."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _decoder.decode(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CanonicalError(f"not valid JSON: {exc}") from exc
    if require_canonical:
        raw = data if isinstance(data, bytes) else data.encode("utf-8")
        if encode(value) != raw:
            raise CanonicalError("JSON is not in RFC 8785 canonical form")
    return value


def parse_object(data: bytes | str, *, require_canonical: bool = False) -> dict[str, Any]:
    """``parse`` that also requires a JSON object at the top."""
    value = parse(data, require_canonical=require_canonical)
    if not isinstance(value, dict):
        raise CanonicalError("expected a JSON object")
    return value


# The names the approval code reads best with.
dumps = encode
loads = parse
