"""Commands for subject rights and the log: sar, takedown, pause/resume, log, subject erase.

Longer than the house ~400 lines: one module per the registration rule (one import line in
``publisher/cli/__init__.py``); each command is a thin caller of publisher.sar / takedown / ledger.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from publisher.cli.app import PLATFORMS, Ctx, cli, emit, pass_ctx
from publisher.cli.register import subject

if TYPE_CHECKING:
    from publisher.config import Config
    from publisher.platforms import Platforms
    from publisher.secrets import Vault
    from publisher.takedown import Attempt, Requested


# -- subject access requests -----------------------------------------------------------
@cli.group()
def sar() -> None:
    """Subject access requests: register, track the deadline, export the pack."""


@sar.command("open")
@click.argument("subject_ref", metavar="SUBJECT")
@click.option("--received", required=True, metavar="YYYY-MM-DD", help="the day the request arrived")
@click.option("--requester", required=True, help='who asked, e.g. "Mrs A Jones (mother)"')
@pass_ctx
def sar_open(c: Ctx, subject_ref: str, received: str, requester: str) -> None:
    """Register a request for SUBJECT (an id, or a name or alias)."""
    from publisher.domain.clock import LocalTimeError, parse_date
    from publisher.errors import InvalidInput
    from publisher.sar.requests import open_request

    try:
        day = parse_date(received)
    except LocalTimeError as exc:
        raise InvalidInput(f"--received {exc}") from None
    v = open_request(c.service(), subject_ref, day, requester)
    click.echo(f"Request {v.id} for subject {v.subject_id} received {v.received}: answer by {v.due}")


@sar.command("list")
@click.option("--all", "include_answered", is_flag=True, help="answered requests too")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def sar_list(c: Ctx, include_answered: bool, as_json: bool) -> None:
    """Open requests, soonest due first, flagging those due within 7 days or overdue."""
    from publisher.sar.requests import list_requests

    data = [v.as_dict() for v in list_requests(c.service(), include_answered)]

    def line(d: dict[str, Any]) -> str:
        ext = f" (+{d['extension_months']} month extension: {d['extension_reason']})" if d["extension_months"] else ""
        flag = "" if d["status"] != "open" else f"  {d['urgency'].upper()} ({d['days_left']} days)"
        return f"{d['id']}  {d['subject']}  received {d['received']}  due {d['due']}{ext}  {d['status']}{flag}"

    emit(data, as_json, lambda: [line(d) for d in data] or ["No open subject access requests."])


@sar.command("extend")
@click.argument("request_id")
@click.option("--months", type=click.IntRange(1, 2), default=2, show_default=True)
@click.option("--reason", required=True, help="why the request is complex (tell the requester this)")
@pass_ctx
def sar_extend(c: Ctx, request_id: str, months: int, reason: str) -> None:
    """Extend a request by up to two further months, with the reason."""
    from publisher.sar.requests import extend_request

    v = extend_request(c.service(), request_id, months, reason)
    click.echo(f"Request {v.id} extended by {v.extension_months} month(s): now due {v.due}. Tell the requester why.")


@sar.command("export")
@click.argument("subject_ref", metavar="SUBJECT")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="a new or empty folder")
@pass_ctx
def sar_export(c: Ctx, subject_ref: str, out: Path) -> None:
    """Write the pack for SUBJECT: sar.json, index.html, media/, proofs/."""
    from publisher.sar.export import export

    r = export(c.service(), subject_ref, out)
    click.echo(
        f"Pack for {r.subject_id} written to {r.out}: {r.posts} posts, {r.media} images, {r.entries} log entries "
        f"with proofs against checkpoint {r.checkpoint_size}"
    )
    if r.redaction_review:
        click.echo(f"{r.redaction_review} image(s) show another pupil: review and redact them before sending")
    click.echo("The answer is recorded in the log. Open index.html to review before sending.")


# -- takedowns and the emergency stop --------------------------------------------------
def connector_settings(cfg: Config) -> Any:
    from publisher.connectors import ConnectorSettings
    from publisher.queue.settings import QueueSettings

    qs = QueueSettings.load(cfg.path)
    return ConnectorSettings(
        timeout=qs.timeout,
        graph_version=cfg.graph_version,
        instagram_pause=qs.instagram_pause,
        instagram_request_delay=qs.instagram_request_delay,
    )


def open_platforms(cfg: Config, vault: Vault) -> Platforms:
    from publisher.platforms import Platforms

    return Platforms(cfg, vault, settings=connector_settings(cfg))


def run_takedowns(c: Ctx, requests: list[Requested]) -> None:
    """Process the queued takedowns now; say what happened; fail if one was refused for good."""
    from publisher.errors import PublisherError
    from publisher.takedown import process_pending_takedowns

    svc = c.service()
    for r in requests:
        if r.post_cancelled:
            click.echo(f"Post {r.post_id} was not live yet: cancelled instead (it will not publish)")
        elif r.cancelled:
            click.echo(f"Post {r.post_id}: not yet published on {', '.join(r.cancelled)}: cancelled there")
    ids = [tid for r in requests for tid in r.queued]
    if not ids:
        return
    with open_platforms(svc.config, svc.vault()) as platforms:
        attempts = process_pending_takedowns(svc, platforms, svc.now(), only=ids)
    for a in attempts:
        click.echo(_attempt_line(a))
    failed = [a for a in attempts if a.outcome == "failed"]
    if failed:
        first = failed[0]
        raise PublisherError(
            f"Post {first.post_id} is still live on {first.account}: {first.message}. Remove it there by hand, or fix "
            "the cause and run 'publisher takedown --retry'"
        )


def _attempt_line(a: Attempt) -> str:
    words = {
        "gone": "taken down and confirmed gone",
        "pending": "NOT YET GONE, retried by the daemon",
        "not_needed": "was not live",
        "failed": "REFUSED",
    }
    return f"Post {a.post_id} on {a.account}: {words.get(a.outcome, a.outcome)} ({a.message})"


@cli.command()
@click.argument("post_id", required=False)
@click.option("--reason", default="", help="why it must come down")
@click.option("--requested-by", default="", help="who asked (parent, DPO, headteacher)")
@click.option("--account", help="only this account")
@click.option("--subject", "subject_id", help="every live post featuring this subject")
@click.option("--platform", type=PLATFORMS, help="with --subject: only this platform")
@click.option("--pending", is_flag=True, help="list takedowns not finished")
@click.option("--retry", is_flag=True, help="try failed and pending takedowns again now")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def takedown(
    c: Ctx,
    post_id: str | None,
    reason: str,
    requested_by: str,
    account: str | None,
    subject_id: str | None,
    platform: str | None,
    pending: bool,
    retry: bool,
    as_json: bool,
) -> None:
    """Take POST_ID down everywhere it is live (or --subject ID), confirm it is gone, log it."""
    from publisher import takedown as td

    svc = c.service()
    if pending:
        rows = td.open_takedowns(svc)
        data = [
            {"id": r.id, "post": r.post_id, "account": r.account, "status": r.status, "attempts": r.attempts,
             "next_try_at": r.next_try_at, "last_error": r.last_error}
            for r in rows
        ]  # fmt: skip
        emit(data, as_json, lambda: [_pending_line(d) for d in data] or ["No takedowns pending."])
        return
    if retry:
        ids = td.retry_failed(svc) + [r.id for r in td.open_takedowns(svc) if r.status == "pending"]
        fake = td.Requested("retry", "", queued=list(dict.fromkeys(ids)))
        run_takedowns(c, [fake])
        return
    if (post_id is None) == (subject_id is None):
        raise click.UsageError("give a POST_ID or --subject ID (not both)")
    if platform and not subject_id:
        raise click.UsageError("--platform goes with --subject; for a post use --account")
    if subject_id is not None:
        requests = td.request_subject_takedown(svc, subject_id, reason, requested_by, platform)
        if not requests:
            click.echo(f"No live post features {subject_id}{f' on {platform}' if platform else ''}: nothing to do")
    else:
        assert post_id is not None
        requests = [td.request_takedown(svc, post_id, reason, requested_by, account)]
    run_takedowns(c, requests)


def _pending_line(d: dict[str, Any]) -> str:
    when = d["next_try_at"].strftime("%Y-%m-%d %H:%M") if isinstance(d["next_try_at"], datetime) else "-"
    return f"{d['id']}  {d['post']}  {d['account']:<20} {d['status']:<8} tries {d['attempts']}  next {when}  {d['last_error']}"


@cli.command()
@click.option("--reason", required=True, help="logged; do not name a child")
@pass_ctx
def pause(c: Ctx, reason: str) -> None:
    """Emergency stop: nothing publishes until 'publisher resume'."""
    from publisher.takedown import pause as do_pause
    from publisher.takedown import pause_state

    svc = c.service()
    if do_pause(svc, reason):
        click.echo("Publishing PAUSED: nothing will publish until 'publisher resume' (logged)")
    else:
        st = pause_state(svc)
        click.echo(f"Publishing was already paused (since {st.since:%Y-%m-%d %H:%M} UTC by {st.by}: {st.reason})")


@cli.command()
@pass_ctx
def resume(c: Ctx) -> None:
    """Lift the emergency stop."""
    from publisher.takedown import resume as do_resume

    if do_resume(c.service()):
        click.echo("Publishing resumed (logged): due posts go out at the next check")
    else:
        click.echo("Publishing was not paused: nothing changed")


# -- erasure -----------------------------------------------------------------------------
@subject.command("erase")
@click.argument("subject_id")
@click.option("--basis", type=click.Choice(["request", "retention", "other"]), default="request", show_default=True)
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@pass_ctx
def subject_erase(c: Ctx, subject_id: str, basis: str, yes: bool) -> None:
    """Erase a subject: their log key is destroyed and their name removed (irreversible)."""
    import sys

    from publisher.sar.erase import erase_subject

    if not yes and sys.stdin.isatty() and not click.confirm(f"Erase {subject_id} for good?"):
        raise click.Abort()
    r = erase_subject(c.service(), subject_id, basis)
    click.echo(f"Subject {subject_id} erased: their personal data in the log is unreadable; the log still verifies")
    if r.live_posts:
        click.echo(
            f"WARNING: {r.live_posts} post(s) featuring them are still live: "
            f"'publisher takedown --subject {subject_id} --reason ... --requested-by ...'"
        )


# -- the log -----------------------------------------------------------------------------
@cli.group("log")
def log_group() -> None:
    """The tamper-evident log: verify, show, prove, checkpoint, export."""


@log_group.command("verify")
@click.option("--against", type=click.Path(path_type=Path, file_okay=False), help="exported checkpoints to hold it to")
@click.option(
    "--processes",
    type=click.IntRange(1, 8),
    help="processes to check the rows with, 1 to 8 (default: one per core, at most 4, from 100,000 entries)",
)
@pass_ctx
def log_verify(c: Ctx, against: Path | None, processes: int | None) -> None:
    """Recompute every leaf and root; check every checkpoint. Exit 0 only if all hold."""
    from publisher.errors import UsageError
    from publisher.store import db

    svc = c.service()
    if against is not None and not against.is_dir():
        raise UsageError(f"No folder {against}: give the folder 'publisher log export-checkpoints' wrote")
    with db.transaction(svc.engine) as s:
        r = svc.audit.ledger.verify(s.connection(), against, processes=processes)
    exported = f", {r.exported_verified} exported checkpoints matched" if against is not None else ""
    click.echo(
        f"OK: {r.size} entries, root {r.root_hash.hex()[:16]}..., {r.checkpoints_verified} checkpoints verified"
        f"{exported}; {r.entries_after_checkpoint} entries after the latest checkpoint"
    )


@log_group.command("show")
@click.option("--since", help="a sequence number or a date (YYYY-MM-DD, UTC)")
@click.option("--kind", help="only entries of this kind (e.g. taken_down)")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def log_show(c: Ctx, since: str | None, kind: str | None, as_json: bool) -> None:
    """The log's entries (personal fields stay sealed)."""
    import json
    from datetime import UTC

    from publisher.errors import InvalidInput
    from publisher.store import db

    start: int | datetime | None = None
    if since is not None:
        try:
            start = int(since) if since.isdigit() else datetime.fromisoformat(since).replace(tzinfo=UTC)
        except ValueError:
            raise InvalidInput(f"--since {since!r}: give a sequence number or a date like 2027-01-31") from None
    svc = c.service()
    with db.transaction(svc.engine) as s:
        data = [
            {"seq": e.seq, "kind": e.kind, "ts": e.created_at.isoformat(),
             "subjects": [x.get("ref") for x in e.body.get("subjects", [])],
             "body": {k: v for k, v in e.body.items() if k != "subjects"}}
            for e in svc.audit.ledger.entries(s.connection(), start, kind)
        ]  # fmt: skip

    def line(d: dict[str, Any]) -> str:
        return f"{d['seq']:>6}  {d['ts'][:19]}  {d['kind']:<20} {json.dumps(d['body'], sort_keys=True)[:150]}"

    emit(data, as_json, lambda: [line(d) for d in data] or ["No entries."])


@log_group.command("checkpoint")
@pass_ctx
def log_checkpoint(c: Ctx) -> None:
    """Sign a checkpoint of the log as it is now."""
    from publisher.ledger.note import Checkpoint, split_note
    from publisher.store import db

    svc = c.service()
    signer = svc.log_signer()
    with db.transaction(svc.engine) as s:
        note = svc.audit.ledger.checkpoint(s.connection(), signer)
    cp = Checkpoint.parse(split_note(note)[0])
    click.echo(f"Checkpoint signed at size {cp.size}")


@log_group.command("prove")
@click.argument("seq", type=click.IntRange(min=0))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="write the proof here (default: print)")
@pass_ctx
def log_prove(c: Ctx, seq: int, out: Path | None) -> None:
    """A self-contained tlog-proof for entry SEQ (signs a checkpoint first if needed)."""
    from publisher.errors import NotFound
    from publisher.store import db

    svc = c.service()
    ledger = svc.audit.ledger
    with db.transaction(svc.engine) as s:
        size, _ = ledger.head(s.connection())
        if seq >= size:
            raise NotFound("log entry", seq, hint=f"the log has {size} entries (0 to {size - 1})")
        latest = ledger.latest_checkpoint(s.connection())
        if latest is None or latest[0].size <= seq:
            ledger.checkpoint(s.connection(), svc.log_signer())
    with db.transaction(svc.engine) as s:
        proof = ledger.prove(s.connection(), seq)
    if out is None:
        click.echo(proof, nl=False)
    else:
        out.write_text(proof, encoding="utf-8")
        click.echo(f"Proof of entry {seq} written to {out}")


@log_group.command("verify-proof")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--vkey", help="the log's verifier key, or a file holding it (default: log.vkey in the config)")
@pass_ctx
def log_verify_proof(c: Ctx, files: tuple[Path, ...], vkey: str | None) -> None:
    """Check tlog-proof FILES offline with only the log's public key."""
    from publisher.errors import LedgerError, UsageError
    from publisher.ledger.log import verify_entry_proof

    key = _vkey(c, vkey)
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise UsageError(f"Cannot read proof file {path}: check the path") from None
        try:
            proven = verify_entry_proof(text, key)
        except LedgerError as exc:
            raise LedgerError(f"{path.name}: proof does NOT verify: {exc}") from exc
        click.echo(
            f"OK  {path.name}: entry {proven.seq} ({proven.kind}) is in {proven.checkpoint.origin} "
            f"at size {proven.checkpoint.size}"
        )


def _vkey(c: Ctx, given: str | None) -> str:
    from publisher.errors import UsageError

    if given:
        candidate = Path(given)
        if "+" not in given and candidate.is_file():
            return candidate.read_text(encoding="utf-8").strip()
        return given.strip()
    cfg = c.config()
    if not cfg.log_vkey:
        raise UsageError("No log.vkey in the config: pass --vkey with the Trust's log verifier key")
    return cfg.log_vkey


@log_group.command("export-checkpoints")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@pass_ctx
def log_export_checkpoints(c: Ctx, directory: Path) -> None:
    """Copy every signed checkpoint to DIRECTORY (the witness copy kept off this machine)."""
    from publisher.store import db

    svc = c.service()
    with db.transaction(svc.engine) as s:
        written = svc.audit.ledger.export_checkpoints(s.connection(), directory)
    click.echo(
        f"{len(written)} new checkpoint file(s) in {directory}; hold the log to them with 'log verify --against'"
    )
