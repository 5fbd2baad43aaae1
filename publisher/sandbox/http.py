"""The small HTTP vocabulary the emulators share: a parsed request, a reply, body parsers."""

from __future__ import annotations

import email.parser
import email.policy
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    host: str  # the platform host the client meant (X-Original-Host)
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    _form: dict[str, str] | None = field(default=None, repr=False)
    _files: dict[str, bytes] | None = field(default=None, repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        """Fields of an urlencoded or multipart body (file parts are in `files()`)."""
        if self._form is None:
            self._parse_body()
        assert self._form is not None
        return self._form

    def files(self) -> dict[str, bytes]:
        if self._files is None:
            self._parse_body()
        assert self._files is not None
        return self._files

    def _parse_body(self) -> None:
        self._form, self._files = {}, {}
        if self.content_type.startswith("application/x-www-form-urlencoded"):
            pairs = urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)
            self._form = dict(pairs)
        elif self.content_type.startswith("multipart/form-data"):
            self._form, self._files = parse_multipart(self.content_type, self.body)


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            files[name] = data
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=UTF-8",
    ) -> Reply:
        return cls(status, json.dumps(payload).encode(), content_type, dict(headers or {}))


class Drop(Exception):
    """Raised by a handler to close the connection without any reply."""
