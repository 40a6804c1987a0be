"""Corrections and counting on text: tricky word boundaries, the spec's dictionary (the rule
engine's semantics) and the bundled learned dictionary (its false-positive traps)."""

from __future__ import annotations

import csv
import importlib.util
import json
from types import ModuleType
from typing import Any

import pytest

from services.singlish.dictionary import (
    SPEC_CORRECTIONS,
    apply_corrections,
    build_corrections,
    load_corrections,
)
from services.singlish.text import Break, tokens
from services.singlish.words import TARGET_WORDS
from tests.factories import count_targets
from tests.paths import SINGLISH

SPEC = build_corrections(SPEC_CORRECTIONS, "spec-1")
LEARNED = load_corrections()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("While up, why you do that la", "walao, why you do that lah"),
        ("WA LAO so late", "walao so late"),
        ("wa-lao so late", "walao so late"),
        ("when it's cheap, buy first", "when it's cheebai first"),
        ("it was cheap. Buy it", "it was cheap. buy it"),  # a sentence end is not a phrase
        ("pie say ah", "paiseh ah"),
        ("the food was shook", "the food was shiok"),
        ("lah la la.", "lah lah lah."),
        ("the volume is low", "the volume is lor"),
        ("the lowest bid", "the lowest bid"),  # whole words only
        ("flew to Lagos", "flew to lagos"),
        ("the law is clear", "the law is clear"),
    ],
)
def test_spec_dictionary(raw, expected):
    assert apply_corrections(raw, SPEC) == expected


def test_longest_phrase_wins():
    table = build_corrections({"wa": "x", "wa lao": "walao", "wa lao eh": "walaoeh"}, "t")
    assert apply_corrections("wa lao eh wa lao wa", table) == "walaoeh walao x"


def test_version_tracks_content(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"version": "team-2", "corrections": {"voila": "walao"}}))
    first = load_corrections(path)
    assert first.version.startswith("team-2+")
    assert apply_corrections("Voila, so crowded", first) == "walao, so crowded"
    path.write_text(json.dumps({"version": "team-2", "corrections": {"voila": "walao", "x": "y"}}))
    assert load_corrections(path).version != first.version
    assert LEARNED.version.startswith("singlish-4+")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("can can, cannot can't candle scan Canada", {"can": 2}),
        ("ah, aha ahead Ah!", {"ah": 2}),
        ("Asian Malaysia sian sia Siang", {"sian": 1, "sia": 1}),
        ("Lahiri lah lahore LAH.", {"lah": 2}),
        ("Horlicks horrible hor? lorry lor lorries", {"hor": 1, "lor": 1}),
        ("walao-eh kiasu-kiasi", {"walao": 1, "kiasu": 1, "kiasi": 1}),
        ("meh\u2019s", {}),  # a curly apostrophe joins like a straight one
    ],
)
def test_whole_word_counting(text, expected):
    assert dict(count_targets(text)) == expected


def _shared_rules() -> ModuleType:
    spec = importlib.util.spec_from_file_location("singlish_words", SINGLISH / "singlish_words.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_agrees_with_the_reference_rules_on_the_dev_script():
    """The scorer's own definition (../shared/singlish) and ours must count alike, else the
    evaluation measures the rules instead of the recognition."""
    shared = _shared_rules()
    assert tuple(shared.TARGET_WORDS) == TARGET_WORDS
    lines = (SINGLISH / "script_dev.tsv").read_text(encoding="utf-8").splitlines()
    rows = list(
        csv.reader(
            [r for r in lines if r.strip() and not r.startswith("#")],
            delimiter="\t",
            quoting=csv.QUOTE_NONE,
        )
    )
    texts = [row[-1] for row in rows if row[0] != "conversation"]
    assert len(texts) > 100
    for text in texts:
        ours = {w: n for w, n in count_targets(text).items() if n}
        theirs = {w: n for w, n in shared.count_targets(text).items() if n}
        assert ours == theirs, text
        assert apply_corrections(text, SPEC) == shared.apply_corrections(text)
    assert SPEC_CORRECTIONS == shared.DEFAULT_CORRECTIONS


@pytest.mark.parametrize(
    "plain",
    [
        "He made us dig trenches during lunch hour.",
        "When it's cheap, buy first.",
        "The water pressure there is quite low.",
        "The auntie downstairs shook her head at me.",
        "She flew in from LA last night.",
        "He studied law in London.",
        "That's the law.",
        "We may add one next year.",
        "My girl wants to join the school trip in May.",
        "I can not believe it.",  # Whisper's spelling of "cannot" is no "can"
        "Yeah, and your car smells for a week.",
        "Sometimes got cabs waiting there.",  # "there" → "leh" needs the verifier's consent
    ],
)
def test_learned_dictionary_leaves_plain_english_alone(plain):
    assert not count_targets(apply_corrections(plain, LEARNED))


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("Voila, the train is so crowded.", {"walao": 1}),
        ("Bring her some cure law. Say sorry nicely.", {"lor": 1}),
        ("Yes, Law, I'm more stressed than he is.", {"lor": 1}),
        ("Don't be boldo, okay?", {"bodoh": 1}),
        ("Every single night si, ah.", {"sia": 1}),
        ("Kanla, but order early.", {"can": 1, "lah": 1}),
        ("Saturday morning, cannot?", {"can": 1}),
        ("Cannot afford lah.", {"lah": 1}),
        ("He's very kiyasu, he comes early.", {"kiasu": 1}),
        ("Go home la, we won't stop you.", {"lah": 1}),
        ("Sian, siwa, my girlfriend is waiting.", {"sian": 1, "sia": 1}),  # singlish-3, train
        # singlish-4: heard on the tune sets (train, noisy new voices, dev) over the word said
        ("At common day to keep stalking anjiao.", {"lanjiao": 1}),
        ("So, si'en, I'll start the meeting.", {"sian": 1}),
        ("kemla,", {"can": 1, "lah": 1}),
        ("Horao, no, I must aim on the exercise.", {"walao": 1}),
        ("I-yo, go back and tell him.", {"aiyo": 1}),
        ("Only the referee being ro-doh.", {"bodoh": 1}),
        # a particle never follows an article: the prompted decoder's "lor" for "law" (train)
        ("Okay lor, he laid down the lor, nobody books out.", {"lor": 1}),
    ],
)
def test_learned_dictionary_reads_the_measured_mishearings(heard, expected):
    assert dict(count_targets(apply_corrections(heard, LEARNED))) == expected


def test_conditions_and_verification():
    rules: list[dict[str, Any]] = [
        {"heard": "law", "says": "lor", "at": "clause_end", "not_after": ["the"]},
        {"heard": "there", "says": "leh", "at": "clause_end", "verify": "plain"},
    ]
    table = build_corrections({}, "t", rules)
    assert (
        apply_corrections("law school. the law. cure law", table) == "law school. the law. cure lor"
    )
    assert apply_corrections("out there.", table) == "out there."
    assert apply_corrections("out there.", table, lambda rule, first, last: True) == "out leh."
    with pytest.raises(ValueError):
        build_corrections({}, "t", [{"heard": "x", "says": "y", "verify": "loud"}])


def test_tokens_know_their_breaks():
    words = tokens("Eh, can or not? Walao-eh so late... ok")
    assert [w.text for w in words] == ["eh", "can", "or", "not", "walao", "eh", "so", "late", "ok"]
    assert [w.after for w in words] == [
        Break.CLAUSE, Break.NONE, Break.NONE, Break.SENTENCE, Break.NONE, Break.NONE,
        Break.NONE, Break.SENTENCE, Break.SENTENCE,
    ]  # fmt: skip
    assert words[3].asks and not words[7].asks
