"""Fault injection: make one emulator endpoint misbehave N times, or with probability p."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

FAULTS = frozenset({"latency", "429", "500", "503", "timeout", "reset", "accept_drop", "duplicate", "challenge"})


@dataclass
class Fault:
    platform: str
    endpoint: str  # an endpoint name the emulator uses, or "*"
    kind: str
    times: int | None  # remaining; None = unlimited (with rate)
    rate: float | None
    seconds: float


class FaultTable:
    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 - test fault dice, not security

    def add(self, fault: Fault) -> None:
        if fault.kind not in FAULTS:
            raise ValueError(f"unknown fault {fault.kind!r}; one of {sorted(FAULTS)}")
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, platform: str, endpoint: str) -> Fault | None:
        """The fault to apply to this request, if any (consumes one of its `times`)."""
        with self._lock:
            for fault in self._faults:
                if fault.platform != platform or fault.endpoint not in ("*", endpoint):
                    continue
                if fault.rate is not None and self._random.random() >= fault.rate:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None
