"""`publisher secrets`: the encrypted credential vault. Values come from standard input or a
hidden prompt, never from the command line, and are never printed."""

from __future__ import annotations

import os
import sys

import click

from publisher.cli.app import Ctx, cli, emit, pass_ctx


@cli.group()
def secrets() -> None:
    """Platform credentials, encrypted at rest under the vault master key."""


@secrets.command("set")
@click.argument("name")
@pass_ctx
def secrets_set(c: Ctx, name: str) -> None:
    """Store a secret read from standard input (or a hidden prompt on a terminal)."""
    from publisher.errors import InvalidInput
    from publisher.secrets import Vault, validate_name

    cfg = c.config()
    validate_name(name)
    if sys.stdin.isatty():
        value = str(click.prompt(f"Value for {name}", hide_input=True, confirmation_prompt=True)).encode("utf-8")
    else:
        value = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
        value = value.rstrip(b"\r\n")
    if not value:
        raise InvalidInput(f"No value given for {name}: pipe it on standard input")
    Vault.open(cfg.vault_path, os.environ, cfg.master_key_file).set(name, value)
    click.echo(f"Secret {name} stored ({len(value)} bytes, encrypted)")


@secrets.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def secrets_list(c: Ctx, as_json: bool) -> None:
    """The names of the stored secrets (never their values)."""
    from publisher.secrets import Vault

    cfg = c.config()
    names = Vault.open(cfg.vault_path, os.environ, cfg.master_key_file).names()
    emit(names, as_json, lambda: names or ["The vault is empty."])


@secrets.command("rotate")
@pass_ctx
def secrets_rotate(c: Ctx) -> None:
    """Re-encrypt every secret under a new master key; safe to re-run if interrupted."""
    from publisher.secrets import RotationState, load_master_key, rotate

    cfg = c.config()
    old = load_master_key(os.environ, cfg.master_key_file)
    result = rotate(cfg.vault_path, old, cfg.master_key_file)
    if result.state is RotationState.STORE_NEW_KEY:
        from publisher.secrets import pending_key_path

        click.echo(f"Re-encrypted {result.resealed} secrets under master key {result.new_key.key_id}.")
        click.echo(
            f"The current key comes from the environment or systemd. The new key is in "
            f"{pending_key_path(cfg.master_key_file)} (0600): put it there instead, then run "
            "'publisher secrets rotate' again to finish."
        )
    else:
        click.echo(f"Re-encrypted {result.resealed} secrets; the key file now holds master key {result.new_key.key_id}")
