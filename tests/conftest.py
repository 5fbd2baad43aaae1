"""Shared fixtures: a fresh workspace with the embedded config, the CLI run in-process, and a
PostgreSQL schema per test when PUBLISHER_TEST_DATABASE_URL is set (required in CI)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Workspace:
    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "config.toml"

    def run(self, *args: str, actor: str = "Sam Teacher", stdin: str = "") -> Result:
        from publisher.cli import main

        out, err = io.StringIO(), io.StringIO()
        old = Path.cwd()
        os.chdir(self.dir)
        stdin_old = sys.stdin
        try:
            sys.stdin = io.StringIO(stdin)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["--config", str(self.config), "--as", actor, *args])
        finally:
            sys.stdin = stdin_old
            os.chdir(old)
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str, actor: str = "Sam Teacher", stdin: str = "") -> str:
        r = self.run(*args, actor=actor, stdin=stdin)
        assert r.code == 0, f"publisher {' '.join(args)} failed: {r.err}{r.out}"
        return r.out

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text, encoding="utf-8")
        return path


def make_workspace(base: Path, database_url: str = "") -> Workspace:
    base.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    if database_url:
        text = text.replace("[publisher]\n", f'[publisher]\ndatabase_url = "{database_url}"\n', 1)
    (base / "config.toml").write_text(text, encoding="utf-8")
    return Workspace(base)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws")


def postgres_base_url() -> str | None:
    url = os.environ.get("PUBLISHER_TEST_DATABASE_URL", "")
    if not url:
        if os.environ.get("PUBLISHER_REQUIRE_POSTGRES") == "1":
            pytest.fail("PUBLISHER_TEST_DATABASE_URL is not set but PostgreSQL tests are required")
        return None
    return url


def on_search_path(url: str, *schemas: str) -> str:
    """The URL with these schemas as its connections' search_path (quoted unless plain)."""
    path = ",".join(n if re.fullmatch(r"[a-z_][a-z0-9_]*", n) else '"' + n.replace('"', '""') + '"' for n in schemas)
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={path}')}"


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema; the yielded URL puts it first on the search_path."""
    import sqlalchemy as sa

    name = "t_" + secrets.token_hex(6)
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield on_search_path(url, name)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        yield f"sqlite:///{tmp_path / 'db' / 'publisher.db'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip("PUBLISHER_TEST_DATABASE_URL not set")
    with postgres_schema(base) as url:
        yield url


def wait_for_a_waiting_advisory_lock(engine: Engine, timeout: float = 10.0) -> None:
    """Until another session waits for an advisory lock (PostgreSQL's pg_locks)."""
    waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while not conn.scalar(waiting):
            assert time.monotonic() < deadline, "nobody waited for the lock"
            conn.rollback()
            time.sleep(0.01)
