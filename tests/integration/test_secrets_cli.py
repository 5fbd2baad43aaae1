"""`publisher secrets`: values in on standard input, names out, rotation under the key file."""

from __future__ import annotations

import json

from publisher import config as cfgmod
from publisher.service import Service
from tests.conftest import Workspace

VALUE = '{"page_id": "42", "access_token": "tok-5c0ffee-planted"}'


def test_set_list_rotate_and_read_back(workspace: Workspace) -> None:
    workspace.ok("init")
    out = workspace.ok("secrets", "set", "account/stmarys-facebook", stdin=VALUE)
    assert "tok-5c0ffee" not in out
    listed = workspace.ok("secrets", "list", "--json")
    assert sorted(json.loads(listed)) == ["account/stmarys-facebook", "log/signing-key"]
    key_before = (workspace.dir / "var" / "keys" / "master.key").read_bytes()
    out = workspace.ok("secrets", "rotate")
    assert "Re-encrypted 2 secrets" in out
    assert (workspace.dir / "var" / "keys" / "master.key").read_bytes() != key_before
    svc = Service.open(cfgmod.load(workspace.config), "test")
    try:
        assert svc.vault().get("account/stmarys-facebook") == VALUE.encode()
        assert svc.log_signer().verifier.vkey == svc.config.log_vkey  # the log key survived rotation
    finally:
        svc.close()


def test_empty_value_and_bad_name_are_refused(workspace: Workspace) -> None:
    workspace.ok("init")
    r = workspace.run("secrets", "set", "account/x", stdin="")
    assert r.code != 0 and "No value given" in r.err
    r = workspace.run("secrets", "set", "bad name!", stdin="v")
    assert r.code != 0 and len(r.err.strip().splitlines()) == 1


def test_no_master_key_is_a_clear_error(workspace: Workspace) -> None:
    workspace.ok("init")
    (workspace.dir / "var" / "keys" / "master.key").unlink()
    r = workspace.run("secrets", "list")
    assert r.code != 0 and "master key" in r.err.lower()


def test_account_add_writes_the_config_and_refuses_duplicates(workspace: Workspace) -> None:
    workspace.ok("init")
    out = workspace.ok(
        "account",
        "add",
        "--name",
        "stmarys-fb2",
        "--school",
        "stmarys",
        "--platform",
        "facebook",
        "--handle",
        "St Mary's PTA",
    )
    assert "publisher secrets set account/stmarys-fb2" in out
    listed = json.loads(workspace.ok("account", "list", "--json"))
    assert {"name": "stmarys-fb2", "platform": "facebook", "secret": "account/stmarys-fb2"}.items() <= next(
        a for a in listed if a["name"] == "stmarys-fb2"
    ).items()
    before = workspace.config.read_text()
    r = workspace.run(
        "account", "add", "--name", "stmarys-fb2", "--school", "stmarys", "--platform", "x", "--handle", "h"
    )
    assert r.code != 0 and "already in" in r.err
    r = workspace.run("account", "add", "--name", "new", "--school", "nowhere", "--platform", "x", "--handle", "h")
    assert r.code != 0 and "not in" in r.err
    assert workspace.config.read_text() == before
