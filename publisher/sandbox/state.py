"""What the emulators hold: accounts, live posts, uploads, counters, one JSON file per platform.

Every change is written atomically (temporary file, fsync, rename) so a second process, or the
next command, sees the same posts; a file changed by another process is reloaded before use.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

PLATFORMS = ("x", "facebook", "instagram")


def _empty() -> dict[str, Any]:
    return {"accounts": {}, "posts": {}, "uploads": {}, "created": {}, "seq": 0}


class SandboxState:
    """Thread-safe store of the three emulators' data under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._data: dict[str, dict[str, Any]] = {}
        self._mtime: dict[str, int] = {}
        for platform in PLATFORMS:
            self._load(platform)

    def _path(self, platform: str) -> Path:
        return self.data_dir / f"{platform}.json"

    def _load(self, platform: str) -> None:
        path = self._path(platform)
        try:
            stat = path.stat()
            data = json.loads(path.read_text(encoding="utf-8"))
            self._mtime[platform] = stat.st_mtime_ns
        except FileNotFoundError:
            data = _empty()
            self._mtime[platform] = 0
        for key, value in _empty().items():
            data.setdefault(key, value)
        self._data[platform] = data

    def get(self, platform: str) -> dict[str, Any]:
        """The platform's data (reloaded if another process wrote it); hold `lock` while using it."""
        with self.lock:
            try:
                mtime = self._path(platform).stat().st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            if mtime and mtime != self._mtime.get(platform):
                self._load(platform)
            return self._data[platform]

    def save(self, platform: str) -> None:
        with self.lock:
            text = json.dumps(self._data[platform], indent=1, sort_keys=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{platform}.", suffix=".tmp", dir=self.data_dir)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self._path(platform))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._mtime[platform] = self._path(platform).stat().st_mtime_ns

    def next_id(self, platform: str, base: int) -> str:
        """A fresh numeric id (string), unique within the platform's data."""
        with self.lock:
            data = self.get(platform)
            data["seq"] = int(data["seq"]) + 1
            return str(base + int(data["seq"]))
