"""How the queue and the daemon behave: the `[daemon]` table of config.toml.

Every key is optional; the defaults suit the embedded deployment.

    [daemon]
    workers = 4                 # accounts publishing at once
    lease_seconds = 300         # a claim lapses after this (longer than any platform call)
    max_attempts = 8            # publish attempts before a delivery is "failed"
    reconcile_attempts = 6      # look-ups that could not answer before "unconfirmed"
    backoff_base = 5.0          # seconds; doubled per attempt, with full jitter
    backoff_max = 900.0
    max_rate_wait = 3600.0      # a platform's Retry-After is honoured up to this
    timeout = 30.0              # every HTTP call to a platform
    instagram_pause = 3.0
    instagram_request_delay = 1.0
    dispatch_seconds = 0.25      # how often newly due deliveries are looked for
    reconcile_seconds = 15.0
    checkpoint_minutes = 10.0
    settle_seconds = 10.0       # a look-up that finds nothing is repeated after this before "absent"
    sandbox_port = 0            # use standing emulators ('publisher sandbox serve') on this port
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from publisher.errors import ConfigError


@dataclass(frozen=True)
class QueueSettings:
    workers: int = 4
    lease_seconds: float = 300.0
    max_attempts: int = 8
    reconcile_attempts: int = 6
    backoff_base: float = 5.0
    backoff_max: float = 900.0
    max_rate_wait: float = 3600.0
    timeout: float = 30.0
    instagram_pause: float = 3.0
    instagram_request_delay: float = 1.0
    dispatch_seconds: float = 0.25
    reconcile_seconds: float = 15.0
    checkpoint_minutes: float = 10.0
    settle_seconds: float = 10.0  # a look-up that finds nothing is repeated after this before "absent"
    sandbox_port: int = 0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.max_attempts < 1 or self.reconcile_attempts < 1:
            raise ConfigError("[daemon] workers, max_attempts and reconcile_attempts must be at least 1")
        if min(self.lease_seconds, self.timeout, self.dispatch_seconds, self.reconcile_seconds) <= 0:
            raise ConfigError("[daemon] lease_seconds, timeout and the job intervals must be positive")
        if min(self.backoff_base, self.backoff_max, self.max_rate_wait, self.checkpoint_minutes) < 0:
            raise ConfigError("[daemon] backoff and wait settings cannot be negative")
        if self.lease_seconds < 3 * self.timeout:
            raise ConfigError("[daemon] lease_seconds must be at least 3 x timeout (a claim must outlive a call)")

    @classmethod
    def load(cls, config_path: Path) -> QueueSettings:
        """The `[daemon]` table of the config file (absent: the defaults)."""
        try:
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return cls()  # config.load() has already reported a broken file
        table = raw.get("daemon", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{config_path}: [daemon] must be a table")
        return cls.from_mapping(table, str(config_path))

    @classmethod
    def from_mapping(cls, table: dict[str, Any], where: str = "config") -> QueueSettings:
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"{where}: [daemon] {key} is not a setting; one of {', '.join(sorted(known))}")
            want = int if known[key] == "int" else float
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (want is int and isinstance(value, float))
            ):
                raise ConfigError(f"{where}: [daemon] {key} must be a number")
            values[key] = want(value)
        return cls(**values)
