"""Word-to-speaker assignment: a pure function on hand-made transcripts and turns."""

from __future__ import annotations

import copy

from services.assignment import assign_speakers
from services.domain import SpeakerTurn, TranscriptSegment, Utterance, Word


def _segment(*words: tuple[float, float, str]) -> TranscriptSegment:
    built = tuple(Word(start, end, f" {text}") for start, end, text in words)
    return TranscriptSegment(built[0].start, built[-1].end, "".join(w.text for w in built), built)


def _summary(utterances: tuple[Utterance, ...]) -> list[tuple[str, str]]:
    return [(u.speaker, u.text) for u in utterances]


def test_each_word_goes_to_the_speaker_overlapping_it_most() -> None:
    segment = _segment((0.0, 1.0, "so"), (1.0, 2.0, "lah"))
    # "lah" overlaps A for 0.3 s and B for 0.7 s; B's turn overlaps A's.
    turns = [SpeakerTurn(0.0, 1.3, "A"), SpeakerTurn(1.3, 3.0, "B"), SpeakerTurn(0.9, 1.1, "B")]

    assert _summary(assign_speakers([segment], turns)) == [("A", "so"), ("B", "lah")]


def test_overlap_is_summed_over_a_speakers_turns() -> None:
    segment = _segment((0.0, 1.0, "walao"))
    turns = [SpeakerTurn(0.0, 0.3, "A"), SpeakerTurn(0.3, 0.6, "B"), SpeakerTurn(0.6, 1.0, "A")]

    assert _summary(assign_speakers([segment], turns)) == [("A", "walao")]


def test_speaker_change_splits_a_segment() -> None:
    segment = _segment((0.0, 0.5, "you"), (0.5, 1.0, "eat"), (1.2, 1.6, "already"), (1.7, 2, "ah"))
    turns = [SpeakerTurn(0.0, 1.1, "A"), SpeakerTurn(1.1, 1.65, "B"), SpeakerTurn(1.65, 3, "A")]

    utterances = assign_speakers([segment], turns)

    assert _summary(utterances) == [("A", "you eat"), ("B", "already"), ("A", "ah")]
    assert [(u.start, u.end) for u in utterances] == [(0.0, 1.0), (1.2, 1.6), (1.7, 2.0)]


def test_same_speaker_across_segments_stays_two_utterances() -> None:
    segments = [_segment((0.0, 1.0, "one.")), _segment((1.0, 2.0, "two."))]

    utterances = assign_speakers(segments, [SpeakerTurn(0.0, 2.0, "A")])

    assert _summary(utterances) == [("A", "one."), ("A", "two.")]


def test_word_in_a_gap_goes_to_the_nearest_turn() -> None:
    segments = [
        _segment((0.0, 0.2, "uh")),  # before every turn: A is nearest
        _segment((2.0, 2.4, "sia"), (4.5, 4.8, "meh")),  # 0.1 s after A; 0.2 s before B
        _segment((9.0, 9.5, "lor")),  # after every turn: B is nearest
    ]
    turns = [SpeakerTurn(0.5, 1.9, "A"), SpeakerTurn(5.0, 6.0, "B")]

    assert _summary(assign_speakers(segments, turns)) == [
        ("A", "uh"),
        ("A", "sia"),
        ("B", "meh"),
        ("B", "lor"),
    ]


def test_zero_length_word_inside_a_turn_takes_that_turn() -> None:
    segment = _segment((3.0, 3.0, "ok"))
    turns = [SpeakerTurn(0.0, 1.0, "A"), SpeakerTurn(2.0, 4.0, "B"), SpeakerTurn(5.0, 6.0, "A")]

    assert _summary(assign_speakers([segment], turns)) == [("B", "ok")]


def test_no_turns_gives_the_default_speaker() -> None:
    segment = _segment((0.0, 1.0, "hello"), (1.0, 2.0, "there"))

    assert _summary(assign_speakers([segment], [])) == [("SPEAKER_00", "hello there")]


def test_empty_transcript_and_wordless_segment_give_nothing() -> None:
    turns = [SpeakerTurn(0.0, 1.0, "A")]
    assert assign_speakers([], turns) == ()
    assert assign_speakers([TranscriptSegment(0.0, 1.0, "", ())], turns) == ()


def test_unsorted_turns_give_the_same_result() -> None:
    segment = _segment((0.0, 1.0, "a"), (2.0, 3.0, "b"), (4.0, 5.0, "c"))
    turns = [SpeakerTurn(0.0, 1.5, "A"), SpeakerTurn(1.5, 3.5, "B"), SpeakerTurn(3.5, 6.0, "C")]

    assert assign_speakers([segment], turns) == assign_speakers([segment], turns[::-1])


def test_inputs_are_not_mutated() -> None:
    segments = [_segment((0.0, 1.0, "can"), (1.0, 2.0, "lah"))]
    turns = [SpeakerTurn(1.5, 3.0, "B"), SpeakerTurn(0.0, 1.5, "A")]
    segments_before, turns_before = copy.deepcopy(segments), copy.deepcopy(turns)

    assign_speakers(segments, turns)

    assert segments == segments_before
    assert turns == turns_before  # still in the caller's (unsorted) order
