"""Occurrences: every count carries its evidence, and a recount from stored evidence (utterance
words plus verdicts, as JSON) gives exactly what a fresh detection gave."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import asdict, replace

import pytest

from services.domain import Utterance, Word
from services.singlish.dictionary import apply_corrections, build_corrections, load_corrections
from services.singlish.occurrences import (
    SOURCE_ASR,
    SOURCE_CORRECTION,
    SOURCE_VERIFIED,
    corrected_text,
    count_occurrences,
    detect_occurrences,
)
from services.singlish.particles import PARTICLE, RULE, clause_ends, with_particle
from services.singlish.verification import UNPROMPTED, Verdict, candidates
from tests.factories import count_targets
from tests.paths import SINGLISH

LEARNED = load_corrections()


def utterance(speaker: str, start: float, text: str, probability: float = 0.9) -> Utterance:
    """Whisper-shaped words (leading space, punctuation attached), 0.4 s each."""
    words = tuple(
        Word(start + 0.4 * i, start + 0.4 * i + 0.3, " " + w, probability)
        for i, w in enumerate(text.split())
    )
    return Utterance(speaker, words[0].start, words[-1].end, words)


def test_each_occurrence_names_its_evidence():
    said = utterance("SPEAKER_01", 10.0, "Voila, can lah. Bring some cure law.", 0.5)
    found = detect_occurrences([said], LEARNED)
    assert [(o.word, o.source) for o in found] == [
        ("walao", SOURCE_CORRECTION),
        ("can", SOURCE_ASR),
        ("lah", SOURCE_ASR),
        ("lor", SOURCE_CORRECTION),
    ]
    walao, can, _, lor = found
    assert (walao.speaker, walao.start, walao.end) == ("SPEAKER_01", 10.0, 10.3)
    assert walao.heard == "Voila" and walao.rule == '"voila" → "walao"'
    assert walao.text == "Voila, can lah. Bring some cure law."
    assert walao.dictionary_version == LEARNED.version and walao.score == 0.5
    assert (can.start, can.rule) == (10.4, "")
    assert lor.heard == "law" and lor.rule.startswith('"law" → "lor" (clause_end, not after:')
    assert (lor.start, lor.end) == pytest.approx((12.4, 12.7))


def test_word_boundaries_hold_through_detection():
    said = utterance(
        "A", 0.0, "Cannot can't candle scan Canada, Lahiri ahead Malaysia Asian lorry."
    )
    assert detect_occurrences([said], LEARNED) == ()


def test_verify_rules_need_a_verdict_with_margin():
    said = utterance("A", 5.0, "I have a client presentation there.")
    rule, first, last = candidates(said, LEARNED)[0]
    assert (rule.says, first, last) == ("leh", 5, 6)
    assert detect_occurrences([said], LEARNED) == ()

    def verdict(margin: float) -> Verdict:
        return Verdict("A", 7.0, 7.3, "there", "leh", rule.describe(), "plain", margin)

    assert detect_occurrences([said], LEARNED, [verdict(0.5)]) == ()
    (leh,) = detect_occurrences([said], LEARNED, [verdict(3.3)])
    assert (leh.word, leh.source, leh.score, leh.heard) == ("leh", SOURCE_VERIFIED, 3.3, "there")
    assert corrected_text(said, LEARNED, [verdict(3.3)]).endswith("presentation leh.")
    assert corrected_text(said, LEARNED, [verdict(0.5)]).endswith("presentation there.")


def test_prompted_verify_rules_fire_from_their_margin():
    """singlish-3: the rules for renderings that are rarer English ("I say" for paiseh) are
    checked with the hotword prompt; singlish-4 lets them fire from 2 nats below the English
    reading (the tune sets' prompted verdicts there were all right); "there" keeps the
    unprompted check (a verdict of its kind)."""
    said = utterance("A", 0.0, "I say, I forgot your name.")
    rule, first, last = candidates(said, LEARNED)[0]
    assert (rule.says, rule.verify, first, last) == ("paiseh", "biased", 0, 2)
    assert LEARNED.verify_margins["biased"] == -2.0

    def verdict(margin: float) -> Verdict:
        return Verdict("A", 0.0, 0.7, "I say", "paiseh", rule.describe(), "biased", margin)

    assert detect_occurrences([said], LEARNED, [verdict(-2.1)]) == ()
    (paiseh,) = detect_occurrences([said], LEARNED, [verdict(-2.0)])
    assert (paiseh.word, paiseh.heard, paiseh.source) == ("paiseh", "I say", SOURCE_VERIFIED)


def test_a_prompted_word_the_unprompted_listen_doubts_is_not_counted():
    """The cross-check's verdict (services.singlish.crosscheck) drops a word only below the
    dictionary's "unprompted" margin; without a verdict (a session processed before it) the
    word counts as before."""
    said = utterance("A", 2.0, "Don't order the Lanjiao set.")
    doubt = Verdict("A", 3.2, 3.5, "lunch hour", "lanjiao", "second listen", UNPROMPTED, -9.0)
    strict = build_corrections({}, "t", verify_margins={UNPROMPTED: -4.0})

    assert [o.word for o in detect_occurrences([said], strict)] == ["lanjiao"]
    assert detect_occurrences([said], strict, [doubt]) == ()
    assert len(detect_occurrences([said], strict, [replace(doubt, margin=-1.0)])) == 1
    assert len(detect_occurrences([said], build_corrections({}, "t"), [doubt])) == 1


def test_a_particle_heard_at_a_clause_end_counts_at_its_margin():
    """A particle the clause-end listen heard after "first," counts (read from that word, in
    text order, and shown in the corrected text) where its margin reaches the dictionary's
    "particle" margin; below it, or with no margin set (the default), nothing changes."""
    said = utterance("A", 0.0, "You go first, then I follow.")
    heard = Verdict("A", 0.8, 1.1, "first,", "lah", RULE, PARTICLE, 3.0)
    listening = build_corrections({}, "t", verify_margins={PARTICLE: 2.0})

    (lah,) = detect_occurrences([said], listening, [heard])
    assert (lah.word, lah.source, lah.heard, lah.score) == ("lah", SOURCE_VERIFIED, "first", 3.0)
    assert (lah.start, lah.end) == (0.8, 1.1) and lah.rule == f"{RULE} (verified: {PARTICLE})"
    assert corrected_text(said, listening, [heard]) == "you go first lah, then i follow."
    assert detect_occurrences([said], listening, [replace(heard, margin=1.9)]) == ()
    assert detect_occurrences([said], build_corrections({}, "t"), [heard]) == ()
    assert corrected_text(said, build_corrections({}, "t"), [heard]) == (
        "you go first, then i follow."
    )


def test_a_particle_verdict_is_not_a_verify_rule_verdict():
    """A particle verdict on a word a verify rule reads ("there" → "leh") neither confirms
    that rule nor is doubled by it."""
    said = utterance("A", 0.0, "Very popular there.")
    heard = Verdict("A", 0.8, 1.1, "there.", "leh", RULE, PARTICLE, 9.0)
    assert detect_occurrences([said], LEARNED, [heard]) == ()


def test_clause_ends_skip_target_words_and_what_rules_read():
    said = utterance("A", 0.0, "Okay lah, you go first. Very popular there. Cure law, then.")
    ends = [c.words[-1].text.strip() for c in clause_ends(said, LEARNED)]
    assert ends == ["first.", "then."]
    first = clause_ends(said, LEARNED)[0]
    assert first.text == "Okay lah, you go first."  # the last 2 s before its end, as written
    assert first.end == pytest.approx(first.words[-1].end + 0.1)  # up to the next word
    assert with_particle("You go first.", "lor") == "You go first lor."
    assert with_particle("Okay", "lah") == "Okay lah"


def test_recount_from_stored_evidence_equals_fresh_detection():
    session = [
        utterance("A", 0.0, "Walao, the lease ends next month already."),
        utterance("B", 4.0, "Don't be boldo, don't come and look for me haar."),
        utterance("A", 9.0, "Tomorrow I have a client presentation there."),
    ]
    there = candidates(session[2], LEARNED)[0][0]
    verdicts = [Verdict("A", 11.4, 11.7, "there", "leh", there.describe(), "plain", 4.7)]
    fresh = detect_occurrences(session, LEARNED, verdicts)
    stored = json.dumps(
        {"utterances": [asdict(u) for u in session], "verdicts": [asdict(v) for v in verdicts]}
    )
    loaded = json.loads(stored)
    again = detect_occurrences(
        [
            Utterance(u["speaker"], u["start"], u["end"], tuple(Word(**w) for w in u["words"]))
            for u in loaded["utterances"]
        ],
        LEARNED,
        [Verdict(**v) for v in loaded["verdicts"]],
    )
    assert again == fresh
    assert count_occurrences(fresh) == {
        "A": Counter({"walao": 1, "leh": 1}),
        "B": Counter({"bodoh": 1, "hor": 1}),
    }


def test_a_new_dictionary_recounts_without_asr():
    session = [utterance("A", 0.0, "Bring her some kueh lah, she voila.")]
    before = count_occurrences(detect_occurrences(session, build_corrections({}, "empty")))
    after = count_occurrences(detect_occurrences(session, LEARNED))
    assert before == {"A": Counter({"lah": 1})}
    assert after == {"A": Counter({"lah": 1, "walao": 1})}


def test_counts_agree_with_the_displayed_text_on_the_dev_script():
    """Every dev-script turn as an utterance: occurrences and corrected text count alike."""
    lines = (SINGLISH / "script_dev.tsv").read_text(encoding="utf-8").splitlines()
    rows = csv.reader([r for r in lines if r and not r.startswith("#")], delimiter="\t")
    texts = [row[-1] for row in rows if row[0] != "conversation"]
    for i, text in enumerate(texts):
        said = utterance("A", 10.0 * i, text)
        occurrences = detect_occurrences([said], LEARNED)
        assert Counter(o.word for o in occurrences) == count_targets(corrected_text(said, LEARNED))
        assert corrected_text(said, LEARNED) == apply_corrections(said.text, LEARNED)


@pytest.mark.parametrize("text", ["♪", "...", "-", "♪ ♪"])
def test_an_utterance_without_words_counts_nothing_and_breaks_nothing(text):
    """Whisper writes "♪" or "..." over music and noise; such an utterance once made
    ``tokens`` raise, failing the whole session."""
    said = Utterance("A", 1.0, 2.0, (Word(1.0, 2.0, f" {text}"),))
    assert detect_occurrences([said], LEARNED) == ()
    assert corrected_text(said, LEARNED) == apply_corrections(text, LEARNED)
    assert candidates(said, LEARNED) == []
