"""Commands for the register: trust, subjects, consent, devices, posts, accounts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from publisher.cli.app import PLATFORMS, SCOPES, Ctx, cli, emit, pass_ctx, passphrase

if TYPE_CHECKING:
    from publisher.service import Service


@cli.command()
@pass_ctx
def init(c: Ctx) -> None:
    """Create the data folder and the database for a config."""
    cfg = c.config()
    for sub in ("", "media", "keys"):
        (cfg.data_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    svc = c.service(migrate=True)
    for line in svc.setup():
        click.echo(line)
    click.echo(f"Ready: data in {cfg.data_dir}, database {cfg.database_url.split('///')[-1]}")


# -- trust ---------------------------------------------------------------------------------
@cli.group()
def trust() -> None:
    """The Trust root key and the approvers it certifies."""


@trust.command("init")
@click.option("--passphrase-file", type=click.Path(path_type=Path), help="file holding the root key's passphrase")
@pass_ctx
def trust_init(c: Ctx, passphrase_file: Path | None) -> None:
    """Make the Trust root key (encrypted, 0600) and pin its public key in the config."""
    svc = c.service()
    pub = svc.trust_init(passphrase(passphrase_file, "New root key passphrase", confirm=True))
    click.echo(f"Trust root key written to {svc.config.root_key_file} (keep it offline); pinned {pub}")


@trust.group("approver")
def approver() -> None:
    """Certify and revoke approvers."""


@approver.command("add")
@click.option("--name", required=True, help="the approver's full name")
@click.option("--role", required=True, type=click.Choice(["headteacher", "nursery-manager", "trust-line-manager"]))
@click.option("--school", "schools", multiple=True, help="school id (repeat for several)")
@click.option("--valid-days", type=int, default=365, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="where to write the approver's key")
@click.option("--root-key", type=click.Path(path_type=Path), help="the Trust root key file")
@click.option("--root-passphrase-file", type=click.Path(path_type=Path))
@click.option("--passphrase-file", type=click.Path(path_type=Path), help="the new approver key's passphrase")
@pass_ctx
def approver_add(
    c: Ctx,
    name: str,
    role: str,
    schools: tuple[str, ...],
    valid_days: int,
    out: Path | None,
    root_key: Path | None,
    root_passphrase_file: Path | None,
    passphrase_file: Path | None,
) -> None:
    """Make an approver's key pair and a certificate signed by the Trust root."""
    from publisher.domain.model import Role

    svc = c.service()
    root_pw = passphrase(root_passphrase_file, "Trust root passphrase")
    new_pw = passphrase(passphrase_file, f"New passphrase for {name}'s key", confirm=True)
    kid, path = svc.approver_add(
        name, Role(role), schools or [svc._school(None)], root_pw, new_pw, valid_days, out, root_key
    )
    click.echo(f"Approver {name} ({role}) certified as key {kid}; private key at {path}")


@approver.command("revoke")
@click.argument("key_id")
@click.option("--reason", required=True)
@click.option("--root-key", type=click.Path(path_type=Path))
@click.option("--root-passphrase-file", type=click.Path(path_type=Path))
@pass_ctx
def approver_revoke(c: Ctx, key_id: str, reason: str, root_key: Path | None, root_passphrase_file: Path | None) -> None:
    """Sign a revocation of an approver's key."""
    svc = c.service()
    svc.approver_revoke(key_id, reason, passphrase(root_passphrase_file, "Trust root passphrase"), root_key)
    click.echo(f"Key {key_id} revoked: its approvals no longer publish")


@approver.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def approver_list(c: Ctx, as_json: bool) -> None:
    """Certificates, and whether each is signed by the pinned root."""
    rows = c.service().approver_list()
    emit(
        rows,
        as_json,
        lambda: (
            [
                f"{r['key_id']}  {r['name']:<24} {r.get('role', '-'):<19} {','.join(r.get('schools', []))}  {r['status']}"  # type: ignore[arg-type]
                for r in rows
            ]
            or ["No approvers."]
        ),
    )


# -- subjects and consent --------------------------------------------------------------
@cli.group()
def subject() -> None:
    """People who may appear in posts: pupils, staff, parents, governors."""


@subject.command("add")
@click.option("--name", required=True, help="display name")
@click.option("--kind", type=click.Choice(["pupil", "staff", "parent", "governor"]), default="pupil", show_default=True)
@click.option("--alias", "aliases", multiple=True, help="another name or nickname to screen for (repeat)")
@click.option("--school")
@pass_ctx
def subject_add(c: Ctx, name: str, kind: str, aliases: tuple[str, ...], school: str | None) -> None:
    """Add someone to the register."""
    from publisher.domain.model import SubjectKind

    sid = c.service().subject_add(name, SubjectKind(kind), aliases, school)
    click.echo(f"Subject {sid} added (no consent yet)")


@subject.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def subject_list(c: Ctx, as_json: bool) -> None:
    """Everyone in the register."""
    rows = c.service().subjects()
    data = [_subject_dict(r) for r in rows]
    emit(
        data,
        as_json,
        lambda: (
            [
                f"{d['id']}  {d['kind']:<8} {d['name']:<28} {d['school']}{'  NEVER PUBLISH' if d['never_publish'] else ''}"
                for d in data
            ]
            or ["No subjects."]
        ),
    )


def _subject_dict(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "name": "[erased]" if r.erased else r.display_name,
        "school": r.school_id,
        "aliases": [] if r.erased else r.aliases,
        "never_publish": r.never_publish,
        "erased": r.erased,
    }


@subject.command("show")
@click.argument("subject_id")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def subject_show(c: Ctx, subject_id: str, as_json: bool) -> None:
    """One subject and their consent history."""
    svc = c.service()
    d = _subject_dict(svc.subject(subject_id))
    d["consent"] = [_consent_dict(e) for e in svc.consent_rows(subject_id)]
    emit(
        d,
        as_json,
        lambda: [
            f"{d['id']}  {d['name']} ({d['kind']}, {d['school']})",
            f"aliases: {', '.join(d['aliases']) or '-'}",
            *(["NEVER PUBLISH"] if d["never_publish"] else []),
            *[_consent_line(e) for e in d["consent"]],
        ],
    )


@subject.command("never-publish")
@click.argument("subject_id")
@click.option("--reason", required=True, help="safeguarding, court order, ... (kept in the register)")
@pass_ctx
def subject_never_publish(c: Ctx, subject_id: str, reason: str) -> None:
    """Never publish this person, whatever consent says."""
    c.service().never_publish(subject_id, reason)
    click.echo(f"{subject_id} is on the never-publish list: any post featuring or naming them is blocked")


@cli.group()
def consent() -> None:
    """The consent register: grants and withdrawals are events, never edits."""


def _consent_dict(e: Any) -> dict[str, Any]:
    return {
        "subject": e.subject_id,
        "platform": e.platform,
        "scope": e.scope,
        "action": e.action,
        "evidence": e.evidence,
        "expires": e.expires.isoformat() if e.expires else None,
        "at": e.at.isoformat(),
        "by": e.actor,
    }


def _consent_line(d: dict[str, Any]) -> str:
    until = f" until {d['expires']}" if d["expires"] else ""
    return (
        f"{d['at'][:16]}  {d['subject']}  {d['action']:<8} {d['platform']:<9} {d['scope']:<5}{until}  {d['evidence']}"
    )


@consent.command("grant")
@click.argument("subject_id")
@click.option("--platform", required=True, type=PLATFORMS)
@click.option("--scope", required=True, type=SCOPES)
@click.option("--evidence", required=True, help="the signed form or agreement reference")
@click.option("--expires", help="YYYY-MM-DD (default: 31 August of this academic year)")
@pass_ctx
def consent_grant(c: Ctx, subject_id: str, platform: str, scope: str, evidence: str, expires: str | None) -> None:
    """Record consent for one platform and one use (image or name)."""
    from publisher.domain.clock import LocalTimeError, parse_date
    from publisher.domain.limits import Platform
    from publisher.domain.model import Scope
    from publisher.errors import InvalidInput

    try:
        until_given = parse_date(expires) if expires else None
    except LocalTimeError as exc:
        raise InvalidInput(f"--expires {exc}") from None
    until = c.service().consent_grant(subject_id, Platform(platform), Scope(scope), evidence, until_given)
    click.echo(f"Consent recorded: {subject_id} {scope} on {platform} until {until}")


@consent.command("withdraw")
@click.argument("subject_id")
@click.option("--platform", required=True, type=PLATFORMS)
@click.option("--scope", required=True, type=SCOPES)
@click.option("--evidence", default="", help="how the withdrawal was received")
@pass_ctx
def consent_withdraw(c: Ctx, subject_id: str, platform: str, scope: str, evidence: str) -> None:
    """Record a withdrawal; posts relying on it no longer publish."""
    from publisher.cli.sar import run_takedowns
    from publisher.domain.limits import Platform
    from publisher.domain.model import Scope

    svc = c.service()
    queued = svc.consent_withdraw(subject_id, Platform(platform), Scope(scope), evidence)
    click.echo(f"Consent withdrawn: {subject_id} {scope} on {platform}")
    click.echo(
        f"Taking down {len(queued)} live post(s) on {platform} that relied on it"
        if queued
        else f"No live post on {platform} relied on it"
    )
    run_takedowns(c, queued)


@consent.command("list")
@click.argument("subject_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def consent_list(c: Ctx, subject_id: str | None, as_json: bool) -> None:
    """The consent events, oldest first."""
    data = [_consent_dict(e) for e in c.service().consent_rows(subject_id)]
    emit(data, as_json, lambda: [_consent_line(d) for d in data] or ["No consent recorded."])


# -- devices ----------------------------------------------------------------------------
@cli.group()
def device() -> None:
    """Cameras and phones the DFO approved for photos."""


@device.command("add")
@click.option("--make", required=True)
@click.option("--model", required=True)
@click.option("--serial", default="")
@pass_ctx
def device_add(c: Ctx, make: str, model: str, serial: str) -> None:
    """Register an approved device (make and model as the camera writes them)."""
    did = c.service().device_add(make, model, serial)
    click.echo(f"Device {did} registered: {make} {model}")


@device.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def device_list(c: Ctx, as_json: bool) -> None:
    """Registered devices."""
    data = [{"id": d.id, "make": d.make, "model": d.model, "serial": d.serial} for d in c.service().devices()]
    emit(data, as_json, lambda: [f"{d['id']}  {d['make']} {d['model']} {d['serial']}" for d in data] or ["No devices."])


# -- posts ------------------------------------------------------------------------------
@cli.group()
def post() -> None:
    """Draft, screen, approve and cancel posts."""


def _read_text(text: str | None, text_file: Path | None) -> str:
    from publisher.errors import InvalidInput

    if (text is None) == (text_file is None):
        raise click.UsageError("give exactly one of --text and --text-file")
    if text_file is None:
        return str(text)
    try:
        return text_file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"No text file at {text_file}: check the path") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{text_file} is not UTF-8 text: save it as UTF-8 and try again") from None


@post.command("draft")
@click.option("--text")
@click.option("--text-file", type=click.Path(path_type=Path))
@click.option("--media", "media", multiple=True, type=click.Path(path_type=Path), help="JPEG or PNG (repeat)")
@click.option("--subject", "subjects", multiple=True, metavar="ID[:image|:name|:image+name]")
@click.option("--account", "accounts", multiple=True, required=True)
@click.option("--at", "at", required=True, metavar='"YYYY-MM-DD HH:MM"', help="local time (Europe/London)")
@pass_ctx
def post_draft(
    c: Ctx,
    text: str | None,
    text_file: Path | None,
    media: tuple[Path, ...],
    subjects: tuple[str, ...],
    accounts: tuple[str, ...],
    at: str,
) -> None:
    """Draft a post; its media are stripped of metadata and stored by hash."""
    svc = c.service()
    pid = svc.post_draft(_read_text(text, text_file), accounts, at, media, subjects)
    click.echo(f"Post {pid} drafted by {c.actor}")
    _print_screen(svc, pid, False)


def _screen_dict(svc: Service, post_id: str) -> dict[str, Any]:
    from publisher.domain.clock import format_local
    from publisher.domain.manifest import manifest_sha256

    sc = svc.screen(post_id)
    row = next(p for p in svc.posts() if p.id == post_id)
    return {
        "id": sc.post.id,
        "school": sc.post.school,
        "author": sc.post.author,
        "status": row.status,
        "scheduled_at": sc.post.scheduled_at.isoformat(),
        "scheduled_local": format_local(sc.post.scheduled_at, svc.config.timezone),
        "text": sc.post.text,
        "manifest_sha256": manifest_sha256(sc.post),
        "media": [m.sha256 for m in sc.post.media],
        "subjects": [{"id": f.subject_id, "scopes": sorted(s.value for s in f.scopes)} for f in sc.post.featured],
        "approval": None
        if sc.approval is None
        else {
            "approver": sc.approval.approver,
            "key_id": sc.approval.key_id,
            "jti": sc.approval.jti,
            "window": [sc.approval.not_before.isoformat(), sc.approval.not_after.isoformat()],
        },
        "accounts": {
            a: [{"code": f.code, "severity": f.severity, "message": f.message} for f in fs]
            for a, fs in sc.findings.items()
        },
    }


def _print_screen(svc: Service, post_id: str, as_json: bool) -> dict[str, Any]:
    from publisher.domain.screening import visible

    d = _screen_dict(svc, post_id)

    def lines() -> list[str]:
        out = [
            f"Post {d['id']} ({d['status']}) for {d['scheduled_local']} by {visible(d['author'])}",
            "-" * 60,
            visible(d["text"]),  # control and invisible characters shown, never obeyed
            "-" * 60,
        ]
        media_dir = svc.config.media_dir
        out += [f"image {i}: {media_dir / h[:2]}/{h}.* (sha256 {h})" for i, h in enumerate(d["media"], 1)]
        out += [f"features {s['id']} ({'+'.join(s['scopes'])})" for s in d["subjects"]]
        if d["approval"]:
            a = d["approval"]
            out.append(f"approved by {a['approver']} (key {a['key_id']}), window {a['window'][0]} - {a['window'][1]}")
        for account, findings in d["accounts"].items():
            blocking = [f for f in findings if f["severity"] == "blocking"]
            out.append(f"{account}: {'may publish' if not blocking else 'BLOCKED'}")
            out += [f"  {f['severity']:<8} {f['code']}: {visible(f['message'])}" for f in findings]
        out.append(f"content hash {d['manifest_sha256']}")
        return out

    emit(d, as_json, lines)
    return d


@post.command("show")
@click.argument("post_id")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def post_show(c: Ctx, post_id: str, as_json: bool) -> None:
    """The post and, for every account, the gate's findings now."""
    _print_screen(c.service(), post_id, as_json)


@post.command("list")
@click.option("--status", type=click.Choice(["draft", "approved", "cancelled", "published"]))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def post_list(c: Ctx, status: str | None, as_json: bool) -> None:
    """Posts, soonest first."""
    svc = c.service()
    from publisher.domain.clock import format_local

    data = [
        {
            "id": p.id,
            "status": p.status,
            "scheduled_at": p.scheduled_at.isoformat(),
            "author": p.author,
            "local": format_local(p.scheduled_at, svc.config.timezone),
            "text": p.text[:50],
        }
        for p in svc.posts(status)
    ]
    emit(
        data,
        as_json,
        lambda: (
            [f"{d['id']}  {d['status']:<9} {d['local']}  {d['author']:<14} {d['text']!r}" for d in data]
            or ["No posts."]
        ),
    )


@post.command("cancel")
@click.argument("post_id")
@click.option("--reason", default="")
@pass_ctx
def post_cancel(c: Ctx, post_id: str, reason: str) -> None:
    """Cancel a post that has not gone out."""
    c.service().post_cancel(post_id, reason)
    click.echo(f"Post {post_id} cancelled: it will not publish")


@post.command("approve")
@click.argument("post_id")
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path), help="your approver key file")
@click.option("--passphrase-file", type=click.Path(path_type=Path))
@click.option("--window-hours", type=int, default=12, show_default=True, help="how long after the time it may go out")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@pass_ctx
def post_approve(
    c: Ctx, post_id: str, key_file: Path, passphrase_file: Path | None, window_hours: int, yes: bool
) -> None:
    """Show the exact post and its findings, then sign the approval."""
    from publisher.service import ApprovalRefused

    svc = c.service()
    shown = _print_screen(svc, post_id, False)
    if not yes and sys.stdin.isatty() and not click.confirm("Approve exactly this post?"):
        raise click.Abort()
    try:
        secret = passphrase(passphrase_file, "Your key's passphrase")
        row = svc.approve(post_id, key_file, secret, window_hours, expected_manifest=shown["manifest_sha256"])
    except ApprovalRefused as exc:
        for f in exc.findings:
            click.echo(f"  {f.account}: {f.code}: {f.message}", err=True)
        raise
    click.echo(
        f"Approved by {row.approver}: may go out {row.not_before:%Y-%m-%d %H:%M} to "
        f"{row.not_after:%Y-%m-%d %H:%M} UTC (approval {row.jti})"
    )


@cli.group()
def account() -> None:
    """The platform accounts in the config."""


@account.command("add")
@click.option("--name", required=True, help="a short unique name, e.g. stmarys-x")
@click.option("--school", required=True)
@click.option("--platform", required=True, type=PLATFORMS)
@click.option("--handle", required=True, help="the account's handle or page name")
@click.option("--sandbox", is_flag=True, help="served by the local emulators (training)")
@click.option("--posts-per-day", type=click.IntRange(1, 10_000), default=50, show_default=True)
@pass_ctx
def account_add(c: Ctx, name: str, school: str, platform: str, handle: str, sandbox: bool, posts_per_day: int) -> None:
    """Add an account to config.toml; store its credentials with 'publisher secrets set'."""
    import re

    from publisher.config import AccountConfig, add_account
    from publisher.domain.limits import Platform
    from publisher.errors import InvalidInput

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name):
        raise InvalidInput(f"--name {name!r}: use lower-case letters, digits and '-'")
    cfg = c.config()
    secret = f"account/{name}"
    add_account(cfg.path, AccountConfig(name, school, Platform(platform), handle, sandbox, posts_per_day, secret))
    hint = "" if sandbox else f"; now store its credentials: publisher secrets set {secret}"
    click.echo(f"Account {name} ({platform}) added to {cfg.path}{hint}")


@account.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def account_list(c: Ctx, as_json: bool) -> None:
    """Configured accounts and the vault secret each uses."""
    cfg = c.config()
    data = [
        {
            "name": a.name,
            "school": a.school,
            "platform": a.platform.value,
            "handle": a.handle,
            "sandbox": a.sandbox,
            "secret": a.secret,
            "posts_per_day": a.posts_per_day,
        }
        for a in cfg.accounts
    ]
    emit(
        data,
        as_json,
        lambda: [
            f"{d['name']:<20} {d['platform']:<9} {d['school']:<10} {d['handle']}"
            f"{'  (sandbox)' if d['sandbox'] else ''}  secret {d['secret']}"
            for d in data
        ],
    )
