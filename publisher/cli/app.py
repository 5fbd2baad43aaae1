"""The command line's frame: the group, the acting person, output and passphrase helpers.

Heavy modules are imported inside the commands so `--help` answers at once.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from publisher.config import Config
    from publisher.service import Service

F = TypeVar("F", bound=Callable[..., Any])
PLATFORMS = click.Choice(["x", "facebook", "instagram"])
SCOPES = click.Choice(["image", "name"])


@dataclass
class Ctx:
    config_path: Path | None
    actor: str
    verbose: bool

    def config(self) -> Config:
        from publisher import config

        return config.load(self.config_path)

    def service(self, migrate: bool = False) -> Service:
        from publisher.service import Service

        svc = Service.open(self.config(), self.actor, migrate=migrate)
        click.get_current_context().call_on_close(svc.close)
        return svc


def _actor(given: str | None) -> str:
    if given:
        return given
    env = os.environ.get("PUBLISHER_USER", "").strip()
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def emit(data: Any, as_json: bool, lines: Callable[[], list[str]]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        for line in lines():
            click.echo(line)


def passphrase(file: Path | None, prompt: str, confirm: bool = False) -> str:
    from publisher.approvals.keys import read_passphrase_file

    if file is not None:
        return read_passphrase_file(file)
    if not sys.stdin.isatty():
        raise click.UsageError(f"{prompt}: pass a --*passphrase-file (no terminal to ask on)")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


@click.group()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="config.toml (default ./config.toml)")
@click.option("--as", "actor", metavar="NAME", help="who is acting (default $PUBLISHER_USER, then the login name)")
@click.option("-v", "--verbose", is_flag=True, help="show tracebacks")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, actor: str | None, verbose: bool) -> None:
    """Publish a school Trust's approved, consent-checked posts, and log what went live."""
    ctx.obj = Ctx(config_path, _actor(actor), verbose)


pass_ctx = click.make_pass_decorator(Ctx)
