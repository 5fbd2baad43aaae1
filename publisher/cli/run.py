"""Commands for the daemon: run, status, demo, and the standing sandbox."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from publisher.cli.app import Ctx, cli, emit, pass_ctx


@cli.command()
@click.option("--once", is_flag=True, help="do what is due now, then exit")
@click.option("--json-logs", is_flag=True, help="structured logs, one JSON object per line")
@pass_ctx
def run(c: Ctx, once: bool, json_logs: bool) -> None:
    """The daemon: publish approved posts when due, retry, reconcile, checkpoint the log."""
    from publisher.daemon import Daemon, configure_logging
    from publisher.queue.settings import QueueSettings

    click.get_current_context().call_on_close(configure_logging(json_logs))
    svc = c.service()
    daemon = Daemon(svc, QueueSettings.load(svc.config.path))
    daemon.open()
    clean = True
    try:
        if once:
            left = daemon.run_once()
            if left:
                click.echo(f"{left} deliveries are still waiting (retry or reconcile later); see 'publisher status'")
        else:
            daemon.run_forever()
    finally:
        clean = daemon.close()
    if not clean:  # a platform call outlived the grace period; its delivery is already in doubt
        os._exit(0)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status(c: Ctx, as_json: bool) -> None:
    """The queue: due, in flight, unconfirmed, blocked, failed; accounts needing attention; the log."""
    from publisher.queue.status import queue_status

    data = queue_status(c.service())
    emit(data, as_json, lambda: _status_lines(data))


def _status_lines(d: dict[str, Any]) -> list[str]:
    counts = d["counts"]
    out = [
        "Publishing is PAUSED (emergency stop)" if d["paused"] else "Publishing is running",
        "deliveries: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"),
        f"due now {len(d['due'])}, scheduled later {d['scheduled']}",
    ]
    for key, title in (
        ("in_flight", "in flight / being checked"),
        ("unconfirmed", "UNCONFIRMED: may or may not be live; check the platform and decide"),
        ("blocked", "blocked at post time"),
        ("failed", "failed"),
    ):
        if d[key]:
            out.append(f"{title}:")
        for r in d[key]:
            out.append(f"  {r['delivery']}  post {r['post']} on {r['account']}  {r['last_error']}")
            out += [f"    {f['code']}: {f.get('message', '')}" for f in r["findings"]]
    if d["takedowns_pending"]:
        out.append("takedowns not finished:")
    for t in d["takedowns_pending"]:
        out.append(
            f"  {t['takedown']}  post {t['post']} on {t['account']}  {t['status']}, {t['attempts']} tries  "
            f"{t['last_error']}"
        )
    for a in d["accounts_needing_attention"]:
        out.append(f"account {a['account']} needs attention: {a['why']}")
    cp = d["last_checkpoint"]
    out.append(
        f"log: {d['log_size']} entries; "
        + (f"last checkpoint at size {cp['size']}, {cp['at']}" if cp else "no checkpoint yet")
    )
    return out


@cli.group()
def delivery() -> None:
    """Settle a delivery the daemon could not (an unconfirmed publish)."""


@delivery.command("resolve")
@click.argument("delivery_id")
@click.option("--live", "platform_id", help="it IS on the platform: the post's id there (checked with a look-up)")
@click.option("--url", default="", help="with --live: the post's address")
@click.option("--not-live", "not_live", is_flag=True, help="it is NOT on the platform: queue it again (gate first)")
@pass_ctx
def delivery_resolve(c: Ctx, delivery_id: str, platform_id: str | None, url: str, not_live: bool) -> None:
    """An unconfirmed delivery: record it live (with its id) or queue it again."""
    from publisher.cli.sar import open_platforms
    from publisher.queue.resolve import resolve

    if (platform_id is None) == (not not_live):
        raise click.UsageError("give exactly one of --live PLATFORM_ID and --not-live")
    svc = c.service()
    with open_platforms(svc.config, svc.vault()) as platforms:
        state = resolve(svc, platforms, delivery_id, platform_id, url)
    click.echo(f"Delivery {delivery_id} is now {state}")


@cli.command()
@click.option(
    "--dir", "folder", type=click.Path(path_type=Path), help="where to put the demo (default: a new temporary folder)"
)
def demo(folder: Path | None) -> None:
    """The whole path end to end on the sandbox emulators, told as a story (no setup, no network)."""
    from publisher.daemon import configure_logging
    from publisher.demo import run_demo

    click.get_current_context().call_on_close(configure_logging(False, logging.ERROR))
    report = run_demo(folder)
    for line in report.story:
        click.echo(line)


@cli.group()
def sandbox() -> None:
    """The local platform emulators."""


@sandbox.command("serve")
@click.option("--port", type=int, default=8765, show_default=True)
@pass_ctx
def sandbox_serve(c: Ctx, port: int) -> None:
    """Run the X, Facebook and Instagram emulators on 127.0.0.1 until Ctrl-C (for rehearsal;
    point daemons at it with [daemon] sandbox_port)."""
    from publisher.sandbox import serve_forever

    cfg = c.config()
    click.echo(f"Emulators on 127.0.0.1:{port}, state in {cfg.data_dir / 'sandbox'}; Ctrl-C stops them")
    serve_forever(cfg.data_dir / "sandbox", port)
