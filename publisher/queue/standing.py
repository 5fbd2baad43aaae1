"""Standing emulators: the daemon talks to `publisher sandbox serve` on a known port instead of
starting its own, so several processes (two daemons, a test, a rehearsal) share one sandbox."""

from __future__ import annotations

from pathlib import Path

from publisher.sandbox.server import Sandbox


class StandingSandbox(Sandbox):
    """A Sandbox already served by another process on `port`; provisioning writes the shared
    state files under `data_dir`, which the serving process reloads."""

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir)
        self._standing_port = port

    def start(self) -> StandingSandbox:
        return self

    def stop(self) -> None:
        return None

    @property
    def port(self) -> int:
        return self._standing_port
