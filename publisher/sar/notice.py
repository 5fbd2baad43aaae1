"""The fixed wording of a SAR pack: what was searched and the supplementary information the
ICO requires with every answer (UK GDPR Art. 15(1)(a)-(h) and 15(2)).

Plain English for a parent; the DPO may add a cover letter, but nothing here needs editing
for an ordinary answer.
"""

from __future__ import annotations

from typing import Any

from publisher.config import Config

OTHERS_IN_IMAGE = (
    "Another pupil also appears in this image. They are not identified here; the image is "
    "marked for redaction review before it is sent."
)

SEARCHED = [
    "the consent register (every grant and withdrawal for this person)",
    "every post drafted, approved, published, blocked, cancelled or taken down that features this person",
    "the copies of the images exactly as they were (or would have been) published",
    "the platforms each post went to, with its address and the dates it was live and taken down",
    "the approvals (who approved each post and when)",
    "the tamper-evident publication log: every entry that refers to this person",
    "requests to take posts down and subject access requests about this person",
]


def controller(config: Config, school_id: str) -> dict[str, Any]:
    school = next((sc for sc in config.schools if sc.id == school_id), None)
    return {"school": school.name if school else school_id, "school_id": school_id}


def information(config: Config) -> dict[str, Any]:
    platforms = sorted({a.platform.value for a in config.accounts})
    recipients = {
        "x": "X Corp. (X, formerly Twitter), when a post went to the school's X account",
        "facebook": "Meta Platforms (Facebook), when a post went to the school's Facebook Page",
        "instagram": "Meta Platforms (Instagram), when a post went to the school's Instagram account",
    }
    return {
        "purposes": [
            "to celebrate and share pupils' achievements and school life with families and the community",
            "to publish only what an authorised approver signed and what parental consent allows, and to "
            "keep a record that shows this",
        ],
        "lawful_basis": "consent (UK GDPR Art. 6(1)(a)), given per platform and per use (image, name) on the "
        "Parent / Social Media Agreement, and withdrawable at any time",
        "categories": [
            "name (only where consent to be named was given)",
            "photographs",
            "the text of posts about the person",
            "consent records (what was agreed, when, by whom, until when)",
        ],
        "recipients": [recipients[p] for p in platforms]
        + ["anyone who can see the school's public social media pages while a post is live"],
        "transfers": "The platforms are based in the United States; they receive the posts under their own "
        "terms and the UK's arrangements for transfers (the UK-US data bridge or standard contractual clauses).",
        "retention": "A post stays on a platform until it is taken down (on request, when consent is withdrawn, "
        "or by the school). The school's record of posts and consent is kept for the period in the Trust's "
        "records-retention schedule. The personal details in the publication log are encrypted per person and "
        "are made permanently unreadable when that person's data is erased.",
        "rights": [
            "to withdraw consent at any time (the posts that relied on it are then taken down)",
            "to have inaccurate data corrected (rectification)",
            "to have data erased",
            "to restrict or object to processing",
            "to data portability (sar.json in this pack is machine-readable)",
        ],
        "complaint": "You can complain to the Information Commissioner's Office (ICO): ico.org.uk/make-a-complaint, "
        "telephone 0303 123 1113, Wycliffe House, Water Lane, Wilmslow, Cheshire SK9 5AF. Please contact the "
        "school's Data Protection Officer first if you can.",
        "source": "The school: photographs taken by staff on approved devices, post text written by staff, and "
        "consent given by the parent or carer (or the pupil) on the Parent / Social Media Agreement.",
        "automated_decisions": "None with legal or similarly significant effects. The software checks "
        "automatically that approval and consent are in place and blocks a post when they are not; people "
        "decide what is posted.",
    }
