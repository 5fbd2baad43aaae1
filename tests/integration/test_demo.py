"""`publisher demo` end to end, as a user runs it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Workspace


def test_publisher_demo_tells_the_whole_story(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)  # the demo needs no config: it makes its own folder
    started = time.monotonic()
    out = ws.ok("demo", "--dir", str(tmp_path / "demo"))
    assert time.monotonic() - started < 60
    lines = out.splitlines()
    live = {ln.split(":")[0].strip(): ln for ln in lines if ln.strip().startswith("stmarys-")}
    assert live["stmarys-x"].count('"') == 4  # two posts live on X
    assert "Sports day!" in live["stmarys-facebook"] and "Year 2" not in live["stmarys-facebook"]
    assert "Art week" in live["stmarys-instagram"] and "Sports day!" in live["stmarys-instagram"]
    assert any("CONSENT_WITHDRAWN" in ln and "stmarys-facebook" in ln for ln in lines)
    assert any("could not be approved: SUBJECT_NEVER_PUBLISH" in ln for ln in lines)
    assert any(ln.startswith("8. log verify: OK") for ln in lines)
    assert (tmp_path / "demo" / "var" / "publisher.db").exists()
    import json

    status = json.loads(ws.ok("--config", str(tmp_path / "demo" / "config.toml"), "status", "--json"))
    assert status["counts"] == {"live": 5, "blocked": 1}
    assert status["last_checkpoint"]["size"] == status["log_size"]


def test_publisher_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "keep.txt").write_text("x")
    r = Workspace(tmp_path).run("demo", "--dir", str(tmp_path / "demo"))
    assert r.code == 1 and "is not empty" in r.err
