"""The content manifest: what an approval binds, computed from the exact bytes."""

from __future__ import annotations

import hashlib
from typing import Any

from publisher.domain import canonical
from publisher.domain.model import Post


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest(post: Post) -> dict[str, Any]:
    """Every field an approval covers. Media order matters; account and subject order do not.
    The author is covered so the maker-checker rule cannot be undone by editing the record."""
    return {
        "v": 1,
        "post": post.id,
        "school": post.school,
        "author": post.author,
        "text_sha256": text_sha256(post.text),
        "media_sha256": [m.sha256 for m in post.media],
        "accounts": sorted(post.accounts),
        "subjects": sorted([f.subject_id, sorted(s.value for s in f.scopes)] for f in post.featured),
    }


def manifest_sha256(post: Post) -> str:
    return hashlib.sha256(canonical.dumps(manifest(post))).hexdigest()
