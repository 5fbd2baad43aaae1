"""config.toml: where the data lives, the pinned Trust root, the policy switches, the accounts.

A malformed file is refused with the key and line named.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.domain.limits import Platform
from publisher.errors import ConfigError

DEFAULT = Path("config.toml")


@dataclass(frozen=True)
class SchoolConfig:
    id: str
    name: str


@dataclass(frozen=True)
class AccountConfig:
    name: str
    school: str
    platform: Platform
    handle: str
    sandbox: bool
    posts_per_day: int
    secret: str


@dataclass(frozen=True)
class Config:
    path: Path
    data_dir: Path
    database_url: str
    timezone: str
    root_public_key: str
    root_key_file: Path
    device_unknown_blocks: bool
    max_media_bytes: int
    approval_max_days: int
    graph_version: str
    log_origin: str
    log_vkey: str
    app_role: str
    schools: tuple[SchoolConfig, ...]
    accounts: tuple[AccountConfig, ...] = field(default_factory=tuple)

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def vault_path(self) -> Path:
        return self.data_dir / "vault.json"

    @property
    def master_key_file(self) -> Path:
        return self.data_dir / "keys" / "master.key"

    def account(self, name: str) -> AccountConfig | None:
        return next((a for a in self.accounts if a.name == name), None)


def _line_of(text: str, key: str, nth: int = 0) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), 1) if re.match(rf"\s*{re.escape(key)}\s*=", line)]
    return hits[nth] if nth < len(hits) else (hits[0] if hits else 0)


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, key: str, problem: str, nth: int = 0) -> ConfigError:
        line = _line_of(self.text, key.rsplit(".", 1)[-1], nth)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {key} {problem}")

    def get(self, table: dict[str, Any], key: str, kind: type, default: Any, dotted: str, nth: int = 0) -> Any:
        value = table.get(key, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(dotted, f"must be {kind.__name__}, got {type(value).__name__}", nth)
        return value


def load(path: Path | None = None) -> Config:
    """Read the config: path, else ./config.toml, else $PUBLISHER_CONFIG."""
    if path is None:
        env = os.environ.get("PUBLISHER_CONFIG", "")
        path = Path(env) if env and not DEFAULT.exists() else DEFAULT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"No config file at {path}: pass --config PATH or create one (see README)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} cannot be read: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}): fix that line") from None
    return _build(path, raw, _Reader(path, text))


def _build(path: Path, raw: dict[str, Any], r: _Reader) -> Config:
    base = path.parent.resolve()
    pub = r.get(raw, "publisher", dict, {}, "[publisher]")
    trust = r.get(raw, "trust", dict, {}, "[trust]")
    policy = r.get(raw, "policy", dict, {}, "[policy]")
    graph = r.get(raw, "facebook", dict, {}, "[facebook]")
    log = r.get(raw, "log", dict, {}, "[log]")
    data_dir = base / r.get(pub, "data_dir", str, "var", "publisher.data_dir")
    url = r.get(pub, "database_url", str, "", "publisher.database_url") or f"sqlite:///{data_dir / 'publisher.db'}"
    tz = r.get(pub, "timezone", str, "Europe/London", "publisher.timezone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.fail("publisher.timezone", f"{tz!r} is not a known time zone (e.g. Europe/London)") from None
    device = r.get(policy, "media_device_unknown", str, "warning", "policy.media_device_unknown")
    if device not in ("warning", "blocking"):
        raise r.fail("policy.media_device_unknown", 'must be "warning" or "blocking"')
    schools = tuple(_schools(raw, r))
    return Config(
        path=path,
        data_dir=data_dir,
        database_url=url,
        timezone=tz,
        root_public_key=r.get(trust, "root_public_key", str, "", "trust.root_public_key"),
        root_key_file=data_dir / r.get(trust, "root_key_file", str, "keys/trust-root.pem", "trust.root_key_file"),
        device_unknown_blocks=device == "blocking",
        max_media_bytes=r.get(policy, "max_media_bytes", int, 15 * 1024 * 1024, "policy.max_media_bytes"),
        approval_max_days=r.get(policy, "approval_max_days", int, 60, "policy.approval_max_days"),
        graph_version=r.get(graph, "graph_version", str, "v26.0", "facebook.graph_version"),
        log_origin=r.get(log, "origin", str, "trust-publisher.invalid/log", "log.origin"),
        log_vkey=r.get(log, "vkey", str, "", "log.vkey"),
        app_role=r.get(pub, "app_role", str, "", "publisher.app_role"),
        schools=schools,
        accounts=tuple(_accounts(raw, r, {s.id for s in schools})),
    )


def _schools(raw: dict[str, Any], r: _Reader) -> list[SchoolConfig]:
    out = []
    for i, s in enumerate(r.get(raw, "schools", list, [], "[[schools]]")):
        sid = r.get(s, "id", str, None, "schools.id", i)
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", sid):
            raise r.fail("schools.id", f"{sid!r} must be lower-case letters, digits and '-'", i)
        out.append(SchoolConfig(sid, r.get(s, "name", str, sid, "schools.name", i)))
    return out


def _accounts(raw: dict[str, Any], r: _Reader, schools: set[str]) -> list[AccountConfig]:
    out = []
    for i, a in enumerate(r.get(raw, "accounts", list, [], "[[accounts]]")):
        name = r.get(a, "name", str, None, "accounts.name", i)
        school = r.get(a, "school", str, None, "accounts.school", i)
        if school not in schools:
            raise r.fail("accounts.school", f"{school!r} is not one of the [[schools]] ids", i)
        platform = r.get(a, "platform", str, None, "accounts.platform", i)
        if platform not in {p.value for p in Platform}:
            raise r.fail("accounts.platform", f"{platform!r} must be one of x, facebook, instagram", i)
        out.append(
            AccountConfig(
                name=name,
                school=school,
                platform=Platform(platform),
                handle=r.get(a, "handle", str, name, "accounts.handle", i),
                sandbox=r.get(a, "sandbox", bool, False, "accounts.sandbox", i),
                posts_per_day=r.get(a, "posts_per_day", int, 50, "accounts.posts_per_day", i),
                secret=r.get(a, "secret", str, f"account/{name}", "accounts.secret", i),
            )
        )
    if len({a.name for a in out}) != len(out):
        raise r.fail("accounts.name", "is used twice; account names must be unique")
    return out


def pin(path: Path, section: str, key: str, value: str) -> None:
    """Write `key = "value"` into [section] of the config file, keeping everything else."""
    text = path.read_text(encoding="utf-8")
    line = f'{key} = "{value}"'
    sec = re.search(rf"(?m)^\[{re.escape(section)}\][ \t]*$", text)
    if sec is None:
        text = text.rstrip("\n") + f"\n\n[{section}]\n{line}\n"
    else:
        nxt = re.search(r"(?m)^\[", text[sec.end() :])
        end = sec.end() + (nxt.start() if nxt else len(text) - sec.end())
        block = text[sec.end() : end]
        pattern = rf"(?m)^[ \t]*{re.escape(key)}[ \t]*=.*$"
        block = re.sub(pattern, line, block, count=1) if re.search(pattern, block) else f"\n{line}" + block
        text = text[: sec.end()] + block + text[end:]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def add_account(path: Path, account: AccountConfig) -> None:
    """Append an [[accounts]] table to the config file; refuses a name in use; validates the result."""
    current = load(path)
    if current.account(account.name) is not None:
        raise ConfigError(f"An account named {account.name} is already in {path}: choose another name")
    if account.school not in {sc.id for sc in current.schools}:
        raise ConfigError(f"School {account.school!r} is not in {path}: add a [[schools]] entry first")
    for value in (account.name, account.handle, account.secret):
        if '"' in value or "\\" in value or "\n" in value:
            raise ConfigError(f"{value!r}: quotes, backslashes and newlines are not allowed here")
    block = (
        f'\n[[accounts]]\nname = "{account.name}"\nschool = "{account.school}"\n'
        f'platform = "{account.platform.value}"\nhandle = "{account.handle}"\n'
        f"sandbox = {'true' if account.sandbox else 'false'}\nposts_per_day = {account.posts_per_day}\n"
        f'secret = "{account.secret}"\n'
    )
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n" + block
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        load(tmp)
    except ConfigError:
        tmp.unlink()
        raise
    os.replace(tmp, path)
