"""`config.pin` writes one key into a section and leaves the rest of the file as it was."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from publisher.config import pin


@pytest.mark.parametrize(
    "text",
    [
        '[trust]\nroot_public_key = ""\nroot_key_file = "x"\n\n[log]\nvkey = ""\n',
        '# top\n[trust]\n# pinned by trust init\nroot_public_key = ""\n[log]\n',
        "[trust]\n",
        "[other]\na = 1\n",
        '[trust]\nroot_public_key = "old"\n[[accounts]]\nname = "n"\n',
    ],
)
def test_pin_sets_the_key_and_keeps_the_rest(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    before = tomllib.loads(text)
    pin(path, "trust", "root_public_key", "AAA")
    pin(path, "log", "vkey", "name+1234+QUJD")
    after = tomllib.loads(path.read_text())
    assert after["trust"]["root_public_key"] == "AAA"
    assert after["log"]["vkey"] == "name+1234+QUJD"
    for section, values in before.items():
        if isinstance(values, dict):
            for k, v in values.items():
                if (section, k) not in {("trust", "root_public_key"), ("log", "vkey")}:
                    assert after[section][k] == v
        else:
            assert after[section] == values
