"""When to try again: exponential backoff with jitter, or the platform's own reset time."""

from __future__ import annotations

import random


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rnd: random.Random,
    retry_after: float | None = None,
    max_rate_wait: float = 3600.0,
) -> float:
    """Seconds to wait before attempt `attempt + 1`.

    A rate limit waits what the platform said (up to `max_rate_wait`) plus up to 10 % jitter, so
    several daemons do not all come back on the same second. Anything else backs off
    exponentially (base x 2^(attempt-1), at most `cap`) with "equal jitter": a random point in
    the upper half of the step, never zero.
    """
    if retry_after is not None:
        wait = min(max(retry_after, 0.0), max_rate_wait)
        return wait + rnd.uniform(0.0, 0.1 * wait)
    step = min(cap, base * 2 ** max(attempt - 1, 0))
    return rnd.uniform(step / 2, step)
