"""Any change to any field an approval binds must stop the post (hypothesis)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.domain import gate
from publisher.domain.model import Featured, Scope

from .world import World, jpeg

WORLD = World()
SHA = st.text("0123456789abcdef", min_size=64, max_size=64)


def _changes() -> st.SearchStrategy[dict[str, object]]:
    p = WORLD.post
    return st.one_of(
        st.text(max_size=60).filter(lambda t: t != p.text).map(lambda t: {"text": t}),
        st.just({"text": p.text.replace("sports", "Sports")}),
        SHA.filter(lambda s: s != p.media[0].sha256).map(lambda s: {"media": (jpeg(sha=s),)}),
        SHA.map(lambda s: {"media": (*p.media, jpeg(sha=s))}),
        st.just({"media": ()}),
        st.sampled_from([("stmarys-x",), ("stmarys-x", "stmarys-facebook"), (*p.accounts, "stmarys-other")]).map(
            lambda a: {"accounts": a}
        ),
        st.sampled_from(
            [
                (Featured("S-AMELIA", frozenset({Scope.IMAGE})),),
                (Featured("S-AMELIA", frozenset({Scope.NAME})),),
                (*p.featured, Featured("S-OLIVER", frozenset({Scope.IMAGE}))),
                (),
            ]
        ).map(lambda f: {"featured": f}),
        st.text("ABCDEFGH0123456789", min_size=1, max_size=12)
        .filter(lambda i: i != "1")
        .map(lambda i: {"id": "P-" + i}),
        st.sampled_from(["stjohns", "stmary"]).map(lambda s: {"school": s}),
        st.sampled_from(["Someone Else", "sam teacher ", "Sam  Teacher"]).map(lambda a: {"author": a}),
    )


@settings(max_examples=150, deadline=None)
@given(change=_changes())
def test_any_change_to_the_manifest_invalidates_the_approval(change: dict[str, object]) -> None:
    w = WORLD
    original = w.post
    try:
        w.post = dataclasses.replace(original, **change)  # type: ignore[arg-type]
        codes = {f.code for f in gate.blocking(gate.evaluate(w.inputs(w.post.accounts[0] if w.post.accounts else "x")))}
    finally:
        w.post = original
    assert "APPROVAL_CONTENT_MISMATCH" in codes


def test_the_unchanged_post_passes() -> None:
    assert WORLD.codes() == set()


def test_reordering_accounts_or_subjects_is_not_a_change() -> None:
    w = World()
    w.post = dataclasses.replace(w.post, accounts=tuple(reversed(w.post.accounts)))
    assert w.codes() == set()
