"""The JSON Schema (draft 2020-12) of sar.json; written into every pack as sar.schema.json.

publisher/sar/SCHEMA.md explains each field in prose. Times are RFC 3339 with an offset,
dates are YYYY-MM-DD. A test validates every exported sar.json against this schema.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_INT = {"type": "integer", "minimum": 0}
_STRS = {"type": "array", "items": _STR}


def _obj(props: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
        "additionalProperties": False,
    }


_CONSENT = _obj(
    {
        "platform": _STR,
        "scope": {"enum": ["image", "name"]},
        "action": {"enum": ["grant", "withdraw"]},
        "evidence": _STR,
        "at": _TIME,
        "by": _STR,
        "expires": {"type": ["string", "null"], "format": "date"},
    }
)

_RELIED = {
    "type": "object",
    "properties": {"scope": {"enum": ["image", "name"]}, "action": {"enum": ["grant", "withdraw", "missing"]}},
    "required": ["scope", "action"],
}

_MEDIA = _obj(
    {
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "file": {"type": "string", "pattern": "^media/[0-9a-f]{64}\\.(jpg|png)$"},
        "mime": _STR,
        "bytes": _INT,
        "width": _INT,
        "height": _INT,
        "features_subject": {"type": "boolean", "description": "the requester appears in this image"},
        "others_appear": {"type": "boolean", "description": "another person appears (not identified)"},
        "redaction_review": {"type": "boolean", "description": "review and redact before sending"},
        "note": _STR,
    }
)

_DELIVERY = _obj(
    {
        "account": _STR,
        "platform": _STR,
        "handle": _STR,
        "status": {
            "enum": [
                "queued",
                "in_flight",
                "inflight",
                "reconcile",
                "live",
                "blocked",
                "failed",
                "unconfirmed",
                "cancelled",
                "taken_down",
            ]
        },
        "platform_id": _STR,
        "url": _STR,
        "published_at": _TIME,
        "taken_down_at": _TIME,
        "findings": {"type": "array", "items": {"type": "object"}},
        "consent_relied_on": {"type": "array", "items": _RELIED},
    }
)

_TAKEDOWN = _obj(
    {
        "id": _STR,
        "account": _STR,
        "platform": _STR,
        "status": {"enum": ["pending", "done", "failed", "not_needed"]},
        "reason": _STR,
        "requested_by": _STR,
        "requested_at": _TIME,
        "done_at": _TIME,
    }
)

_POST = _obj(
    {
        "id": _STR,
        "status": _STR,
        "author": _STR,
        "created_at": _TIME,
        "scheduled_at": _TIME,
        "text": _STR,
        "text_redacted": {"type": "boolean"},
        "featured_as": {"type": "array", "items": {"enum": ["image", "name"]}},
        "others_featured": _INT,
        "others_in_images": _INT,
        "media": {"type": "array", "items": _MEDIA},
        "approval": {"oneOf": [{"type": "null"}, _obj({"approver": _STR, "approved_at": _TIME, "key_id": _STR})]},
        "deliveries": {"type": "array", "items": _DELIVERY},
        "takedowns": {"type": "array", "items": _TAKEDOWN},
    }
)

_ENTRY = _obj(
    {
        "seq": _INT,
        "kind": _STR,
        "ts": _TIME,
        "details": {"type": "object"},
        "about_you": {"type": ["object", "null"]},
        "proof": {"type": "string", "pattern": "^proofs/[0-9]{9}\\.tlog-proof$"},
    }
)

_REQUEST = _obj(
    {
        "id": _STR,
        "requester": _STR,
        "received": {"type": "string", "format": "date"},
        "due": {"type": "string", "format": "date"},
        "extension_months": {"type": "integer", "minimum": 0, "maximum": 2},
        "extension_reason": _STR,
        "status": {"enum": ["open", "answered"]},
    }
)

_INFO = _obj(
    {
        "purposes": _STRS,
        "lawful_basis": _STR,
        "categories": _STRS,
        "recipients": _STRS,
        "transfers": _STR,
        "retention": _STR,
        "rights": _STRS,
        "complaint": _STR,
        "source": _STR,
        "automated_decisions": _STR,
    }
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://trust-publisher.invalid/schemas/sar-1.json",
    "title": "Subject access request pack (trust-publisher/sar@1)",
    **_obj(
        {
            "schema": {"const": "trust-publisher/sar@1"},
            "generated_at": _TIME,
            "controller": _obj({"school": _STR, "school_id": _STR}),
            "subject": _obj(
                {
                    "id": _STR,
                    "name": _STR,
                    "aliases": _STRS,
                    "kind": {"enum": ["pupil", "staff", "parent", "governor"]},
                    "school": _STR,
                    "erased": {"type": "boolean"},
                }
            ),
            "requests": {"type": "array", "items": _REQUEST},
            "searched": _STRS,
            "posts": {"type": "array", "items": _POST},
            "consent_history": {"type": "array", "items": _CONSENT},
            "log": _obj(
                {
                    "origin": _STR,
                    "vkey": _STR,
                    "checkpoint": _obj({"size": _INT, "root_hash": _STR, "note": _STR}),
                    "entries": {"type": "array", "items": _ENTRY},
                }
            ),
            "information": _INFO,
            "redactions": _INT,
        }
    ),
}
