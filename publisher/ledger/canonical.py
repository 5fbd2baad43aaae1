"""Canonical JSON for log bodies: the one implementation lives in publisher.domain.canonical."""

from __future__ import annotations

from publisher.domain.canonical import (
    SCHEMA_VERSION,
    CanonicalError,
    encode,
    encode_versioned,
    parse,
    parse_object,
)

__all__ = ["SCHEMA_VERSION", "CanonicalError", "encode", "encode_versioned", "parse", "parse_object"]
