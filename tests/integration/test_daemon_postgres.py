"""Two `publisher run` processes on one PostgreSQL database share 1,000 deliveries: each is
published exactly once (claims with FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from publisher.sandbox import Sandbox
from tests.conftest import postgres_base_url, postgres_schema
from tests.contract.queue.world import active, build_world, check_exactly_once, leased, log_bodies, provision

from .test_daemon_process import start

# More accounts than one daemon has workers: a daemon publishes on one account at a time per
# worker, and deliveries on one account go one at a time across daemons, so with as many
# workers as accounts the first daemon could keep every account busy and the second would
# only wait (its share was 19 of 1,000 in one CI run).
ACCOUNTS = tuple((f"stmarys-{p}{i}", p) for p in ("x", "facebook") for i in range(4))
WORKERS = 2


@pytest.mark.slow
@pytest.mark.postgres
def test_two_daemons_on_one_postgres_publish_1000_deliveries_exactly_once(tmp_path: Path) -> None:
    base_url = postgres_base_url()
    if base_url is None:
        pytest.skip("PUBLISHER_TEST_DATABASE_URL not set")
    base = tmp_path / "w"
    with postgres_schema(base_url) as url, Sandbox(base / "var" / "sandbox", seed=3) as sb:
        w = build_world(base, database_url=url, daemon={"sandbox_port": sb.port, "workers": WORKERS}, accounts=ACCOUNTS)
        try:
            ids = provision(w, sb)
            for _ in range(1000 // len(ACCOUNTS)):
                w.post(featured=[])
            daemons = [start(w), start(w)]
            try:
                end = time.monotonic() + 150
                while active(w.svc) and time.monotonic() < end:
                    time.sleep(0.5)
            finally:
                for d in daemons:
                    d.signal(signal.SIGTERM)
                codes = [d.wait(20) for d in daemons]
            assert codes == [0, 0], daemons[0].err[-1500:] + daemons[1].err[-1500:]
            assert check_exactly_once(w.svc, sb, ids) == {"live": 1000}
            assert leased(w.svc) == []
            for d in daemons:  # both did a share of the work
                assert d.err.count('"event": "published"') > 50, [x.err.count('"event": "published"') for x in daemons]
            assert len(log_bodies(w.svc, "post_published")) == 1000
        finally:
            w.svc.close()
