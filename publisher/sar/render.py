"""index.html of a SAR pack: one self-contained, printable page (inline CSS, no scripts, no
external assets; images are relative links into media/). Pure: the document in, HTML out."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

_CSS = """
body{font-family:Georgia,'Times New Roman',serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#111;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #333;padding-bottom:.2rem;margin-top:2rem}
h3{margin:.2rem 0}.muted{color:#555;font-size:.9rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #999;padding:.25rem .4rem;text-align:left;vertical-align:top}th{background:#eee}
.post{border:1px solid #666;padding:.8rem;margin:1rem 0;page-break-inside:avoid;break-inside:avoid}
.text{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;border-left:4px solid #888}
figure{margin:.5rem 0;display:inline-block;max-width:100%}img{max-width:100%;max-height:22rem;border:1px solid #333}
.review{background:#fff3cd;border:2px solid #c90;padding:.3rem .5rem;font-weight:bold}
.status{display:inline-block;padding:0 .4rem;border:1px solid #333;font-size:.85rem}
@media print{body{margin:0;max-width:none}a{color:#000}.post{border-color:#000}}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _day(value: str | None) -> str:
    return "-" if not value else _e(value[:16].replace("T", " "))


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _link(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        return _e(url) or "-"
    return f'<a href="{_e(url)}">{_e(url)}</a>'


def _media(items: list[dict[str, Any]]) -> str:
    out = []
    for item in items:
        review = f'<p class="review">{_e(item["note"])}</p>' if item["redaction_review"] else ""
        out.append(
            f'<figure>{review}<img src="{_e(item["file"])}" alt="Image of the post ({_e(item["mime"])})">'
            f'<figcaption class="muted">{_e(item["file"])} ({item["bytes"]} bytes, SHA-256 '
            f"{_e(item['sha256'][:16])}...)</figcaption></figure>"
        )
    return "".join(out)


def _consent_cell(relied: list[dict[str, Any]]) -> str:
    parts = []
    for c in relied:
        if c["action"] == "grant":
            parts.append(f"{_e(c['scope'])}: {_e(c['evidence'])} (given {_day(c['at'])} by {_e(c['by'])})")
        else:
            parts.append(f"{_e(c['scope'])}: {_e(c['action'])}")
    return "<br>".join(parts) or "-"


def _deliveries(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>Not scheduled to any platform (never approved).</p>"
    return _table(
        ["Platform", "Account", "Status", "Link", "Live from", "Taken down", "Consent relied on"],
        [
            [
                _e(d["platform"]),
                _e(d["handle"] or d["account"]),
                f'<span class="status">{_e(d["status"].replace("_", " "))}</span>',
                _link(d["url"]),
                _day(d["published_at"]),
                _day(d["taken_down_at"]),
                _consent_cell(d["consent_relied_on"]),
            ]
            for d in rows
        ],
    )


def _takedowns(rows: list[dict[str, Any]]) -> str:
    return _table(
        ["Takedown", "Account", "Status", "Reason", "Requested by", "Requested", "Done"],
        [
            [_e(t["id"]), _e(t["account"]), _e(t["status"]), _e(t["reason"]), _e(t["requested_by"]),
             _day(t["requested_at"]), _day(t["done_at"])]
            for t in rows
        ],
    )  # fmt: skip


def _post(p: dict[str, Any]) -> str:
    approval = p["approval"]
    approved = (
        f"Approved by {_e(approval['approver'])} on {_day(approval['approved_at'])}" if approval else "Not approved"
    )
    others = (
        f"<p><b>Another pupil appears in this post</b> ({p['others_featured']} other "
        f"{'person' if p['others_featured'] == 1 else 'people'}); they are not identified here.</p>"
        if p["others_featured"]
        else ""
    )
    takedowns = _takedowns(p["takedowns"]) if p["takedowns"] else ""
    return (
        f'<section class="post" id="{_e(p["id"])}"><h3>Post {_e(p["id"])} '
        f'<span class="status">{_e(p["status"])}</span></h3>'
        f'<p class="muted">Written by {_e(p["author"])}; scheduled {_day(p["scheduled_at"])}; '
        f"features you by {_e(' and '.join(p['featured_as']))}. {approved}.</p>"
        f'<div class="text">{_e(p["text"])}</div>{others}{_media(p["media"])}'
        f"{_deliveries(p['deliveries'])}{takedowns}</section>"
    )


def _consent(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No consent is recorded.</p>"
    return _table(
        ["When", "Platform", "Use", "Action", "Evidence", "Until", "Recorded by"],
        [
            [_day(c["at"]), _e(c["platform"]), _e(c["scope"]), _e(c["action"]), _e(c["evidence"]),
             _e(c["expires"] or "-"), _e(c["by"])]
            for c in rows
        ],
    )  # fmt: skip


def _entries(log: dict[str, Any]) -> str:
    rows = [
        [str(e["seq"]), _day(e["ts"]), _e(e["kind"].replace("_", " ")), _e(e["details"].get("post", "")),
         f'<a href="{_e(e["proof"])}">{_e(e["proof"])}</a>']
        for e in log["entries"]
    ]  # fmt: skip
    cp = log["checkpoint"]
    return (
        f"<p>The publication log is tamper-evident: each entry below has a proof file that shows it is in the log "
        f"as signed at size {cp['size']} by <code>{_e(log['origin'])}</code>. See "
        f'<a href="proofs/VERIFY.txt">proofs/VERIFY.txt</a> for how to check them.</p>'
        + (_table(["Entry", "When", "What", "Post", "Proof"], rows) if rows else "<p>No log entries.</p>")
    )


def _information(info: dict[str, Any]) -> str:
    def ul(items: list[str]) -> str:
        return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"

    return (
        f"<h3>Why we hold it (purposes)</h3>{ul(info['purposes'])}<p>Lawful basis: {_e(info['lawful_basis'])}</p>"
        f"<h3>What we hold (categories)</h3>{ul(info['categories'])}"
        f"<h3>Who receives it (recipients)</h3>{ul(info['recipients'])}<p>{_e(info['transfers'])}</p>"
        f"<h3>How long we keep it (retention)</h3><p>{_e(info['retention'])}</p>"
        f"<h3>Your rights</h3>{ul(info['rights'])}"
        f"<h3>Your right to complain to the ICO</h3><p>{_e(info['complaint'])}</p>"
        f"<h3>Where it came from (source)</h3><p>{_e(info['source'])}</p>"
        f"<h3>Automated decisions</h3><p>{_e(info['automated_decisions'])}</p>"
    )


def render(doc: dict[str, Any]) -> str:
    subject = doc["subject"]
    name = subject["name"] or "(erased)"
    requests = "".join(
        f"<li>Request {_e(r['id'])} from {_e(r['requester'])}, received {_e(r['received'])}, "
        f"due {_e(r['due'])} ({_e(r['status'])})</li>"
        for r in doc["requests"]
    )
    erased = (
        "<p><b>This person's data was erased.</b> No personal data about them is held any more.</p>"
        if subject["erased"]
        else ""
    )
    posts = "".join(_post(p) for p in doc["posts"]) or "<p>No posts feature this person.</p>"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Subject access request: {_e(name)}</title><style>{_CSS}</style></head><body>"
        f'<h1>Personal data held about <span id="subject-name">{_e(name)}</span></h1>'
        f'<p class="muted">{_e(doc["controller"]["school"])} - subject {_e(subject["id"])} '
        f"({_e(subject['kind'])}) - prepared {_day(doc['generated_at'])}</p>{erased}"
        f"<ul>{requests}</ul>"
        f"<h2>What we searched</h2><ul>{''.join(f'<li>{_e(x)}</li>' for x in doc['searched'])}</ul>"
        f"<h2>Posts about you ({len(doc['posts'])})</h2>{posts}"
        f"<h2>Your consent history</h2>{_consent(doc['consent_history'])}"
        f"<h2>The publication log</h2>{_entries(doc['log'])}"
        f"<h2>About this information</h2>{_information(doc['information'])}"
        "</body></html>\n"
    )
