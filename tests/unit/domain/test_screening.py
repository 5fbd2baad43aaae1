"""Name screening cannot be dodged by spelling tricks, and disguised text is itself blocked."""

from __future__ import annotations

import dataclasses

import pytest

from publisher.domain import gate
from publisher.domain.model import same_person
from publisher.domain.screening import disguises, mentions, visible

from .world import World

NADIA = ("Nadia Khan", "Nadia")


@pytest.mark.parametrize(
    "text",
    [
        "Well done Nadia",
        "NADIA's painting",
        "Nadi\u0430 (Cyrillic a)",
        "N\u00adadia (soft hyphen)",
        "Na\u200bdia (zero width)",
        "#WellDoneNadia",
        "@nadia_k",
        "\U0001d40d\U0001d41a\U0001d41d\U0001d422\U0001d41a (bold)",
        "\uff2e\uff41\uff44\uff49\uff41 (full width)",
        "Nadia\u2019s",
        "nadia khan",
    ],
)
def test_spellings_of_a_name_are_found(text: str) -> None:
    assert mentions(text, NADIA)


@pytest.mark.parametrize("text", ["Nadiaa", "Canada day", "Nadine", "Khanate"])
def test_other_words_are_not(text: str) -> None:
    assert not mentions(text, NADIA)


@pytest.mark.parametrize(
    "text", ["Amelia did well", "Amelia Rose", "AmeliaRose", "Amelia\u2011Rose", "Amelia\u2013Rose"]
)
def test_hyphenated_names_in_all_their_forms(text: str) -> None:
    assert mentions(text, ("Amelia-Rose Smith", "Amelia-Rose"))


def test_accents_either_way() -> None:
    assert mentions("Zoe and Siobhan", ("Zoë Brown", "Zoë"))
    assert mentions("Siobhán", ("Siobhan",))
    assert mentions("Zoe\u0308", ("Zoë",))  # decomposed form


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("Na\u200bdia", "U+200B"),
        ("a\u202eb", "U+202E"),
        ("Nadi\u0430", "mixing Cyrillic and Latin"),
        ("hi\x1b[8m hidden", "control character U+001B"),
    ],
)
def test_disguised_text_is_reported(text: str, what: str) -> None:
    assert any(what in d for d in disguises(text))


def test_ordinary_text_and_emoji_are_not_disguised() -> None:
    assert disguises("Family day \U0001f468\u200d\U0001f469\u200d\U0001f467 caf\u00e9 \u00e9cole\nline two") == []


def test_visible_shows_what_a_terminal_would_hide() -> None:
    assert visible("ok\x1b[8mhidden\u202e") == "ok<U+001B>[8mhidden<U+202E>"


def test_the_gate_blocks_a_disguised_never_publish_name() -> None:
    w = World()
    w.subjects["S-OLIVER"] = dataclasses.replace(w.oliver, never_publish=True)
    w.post = dataclasses.replace(w.post, text="Amelia and Olive\u0433 \u2014 " + "Ol\u200bi\u200bver")
    w.token = w.sign()
    codes = w.codes()
    assert {"SUBJECT_NEVER_PUBLISH", "TEXT_DISGUISED"} <= codes


def test_a_child_of_another_school_named_without_consent_is_flagged() -> None:
    w = World()
    other = dataclasses.replace(w.oliver, id="S-ZARA", school="stjohns", display_name="Zara Ali")
    w.subjects[other.id] = other
    w.post = dataclasses.replace(w.post, text="Amelia met Zara from St John's")
    w.token = w.sign()
    assert w.codes() == {"NAME_WITHOUT_CONSENT"}


@pytest.mark.parametrize("author", ["jhead", "Head, Jane", "Mrs J Head", "jane.head", "JANE HEAD", "Jane H\u0435ad"])
def test_self_approval_under_another_spelling(author: str) -> None:
    assert same_person("Jane Head", author)
    w = World()
    w.post = dataclasses.replace(w.post, author=author)
    w.token = w.sign()
    assert "SELF_APPROVAL" in w.codes()


def test_different_people_are_not_confused() -> None:
    assert not same_person("Jane Head", "Sam Teacher")
    assert not same_person("Jane Head", "Jane Hill")


def test_editing_the_author_after_approval_is_a_mismatch() -> None:
    w = World()
    w.post = dataclasses.replace(w.post, author="Someone Else")
    assert gate.blocking(gate.evaluate(w.inputs())) != []
    assert "APPROVAL_CONTENT_MISMATCH" in w.codes()
