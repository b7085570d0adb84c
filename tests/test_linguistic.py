"""Full-context labels (real Festival output) to frame-level linguistic features."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vocoder.errors import VocoderError
from vocoder.features.linguistic import (
    COUNT_CAP,
    POSITION_FEATURES,
    QUESTIONS_PATH,
    LabelFileError,
    QuestionSetError,
    frame_phones,
    label_samples,
    linguistic_dim,
    linguistic_features,
    load_question_set,
    parse_question_set,
    read_labels,
)

pytest_plugins = ["tests.festival_fixtures"]


def _count(value: int) -> float:
    return min(math.log1p(value) / math.log1p(COUNT_CAP), 1.0)


def test_question_set_size_is_exposed() -> None:
    questions = load_question_set()
    text = QUESTIONS_PATH.read_text()
    n_qs = sum(line.startswith("QS ") for line in text.splitlines())
    n_cqs = sum(line.startswith("CQS ") for line in text.splitlines())
    assert (len(questions.binary), len(questions.numeric)) == (n_qs, n_cqs) == (484, 37)
    assert linguistic_dim() == questions.dim == n_qs + n_cqs + len(POSITION_FEATURES) == 524
    assert len(set(questions.names)) == len(questions.names)


def test_real_festival_labels_answer_the_questions(festival_dir: Path) -> None:
    questions = load_question_set()
    segments = read_labels(festival_dir / "kal" / "0000.lab")  # "Hello world, this is a test."
    assert [s.phone for s in segments[:3]] == ["pau", "hh", "ax"]
    hh = questions.answer(segments[1].context)
    on = {name for name, value in zip(questions.binary_names, hh, strict=False) if value == 1}
    assert {"C-hh", "C-Fricative", "C-Unvoiced_Consonant", "L-pau", "R-ax", "RR-l", "C-Word_GPOS-content"} <= on
    assert "C-Voiced" not in on and "C-Vowel" not in on
    numeric = dict(zip(questions.numeric_names, hh[len(questions.binary) :], strict=True))
    assert numeric["Num-Words_in_Utterance"] == pytest.approx(_count(6))
    assert numeric["Num-Phrases_in_Utterance"] == pytest.approx(_count(2))
    assert numeric["C-Word_Num-Syls"] == pytest.approx(_count(2))  # hel-lo
    assert numeric["Pos_C-Syl_in_Word(Fw)"] == pytest.approx(_count(1))
    pause = questions.answer(segments[0].context)
    assert pause[questions.index("C-Silence")] == 1 and numeric["C-Syl_Num-Phones"] > 0
    assert pause[questions.index("C-Syl_Num-Phones")] == 0  # not applicable in a pause


@pytest.mark.parametrize("voice", ["slt", "kal"])
@pytest.mark.parametrize("hop", [200, 80])
def test_frames_follow_the_label_timeline(festival_dir: Path, voice: str, hop: int) -> None:
    questions = load_question_set()
    segments = read_labels(festival_dir / voice / "0001.lab")
    rate = 16000
    n_samples = label_samples(segments, rate)
    features = linguistic_features(segments, rate, hop, questions)
    assert features.shape == (math.ceil(n_samples / hop), questions.dim) and features.dtype == np.float32
    binary = features[:, : len(questions.binary)]
    assert set(np.unique(binary)) <= {0.0, 1.0}
    assert features.min() >= 0 and features.max() <= 1
    owners = frame_phones(segments, rate, hop)
    for frame in range(0, len(features), 7):
        centre = (frame + 0.5) * hop / rate * 1e7
        owner = segments[owners[frame]]
        assert owner.start <= centre < owner.end or owners[frame] == len(segments) - 1
        assert features[frame, questions.index(f"C-{owner.phone}")] == 1
    forward = features[:, questions.index("phone_position_forward")]
    backward = features[:, questions.index("phone_position_backward")]
    assert np.allclose(forward + backward, 1)
    same_phone = owners[1:] == owners[:-1]
    assert np.all(np.diff(forward)[same_phone] > 0)  # position rises within a phone
    assert features[0, questions.index("C-Silence")] == features[-1, questions.index("C-Silence")] == 1


def _corrupt(lines: list[str], case: str) -> tuple[list[str], int]:
    """A broken copy of a real label file, and the 1-based line the error must name."""
    lines = list(lines)
    start, end, context = lines[2].split()
    if case == "non-integer time":
        lines[2] = f"{start} 12.5e3 {context}"
    elif case == "end before start":
        lines[2] = f"{start} {int(start) - 1} {context}"
    elif case == "overlap":
        lines[2] = f"{int(start) - 100} {end} {context}"
    elif case == "gap":
        lines[2] = f"{int(start) + 100} {end} {context}"
    elif case == "unsorted":
        lines[2], lines[3] = lines[3], lines[2]
    elif case == "context":
        lines[2] = f"{start} {end} {context.split('/A:')[0]}"
    elif case == "missing field":
        lines[2] = f"{start} {context}"
    return lines, 3


@pytest.mark.parametrize(
    "case", ["non-integer time", "end before start", "overlap", "gap", "unsorted", "context", "missing field"]
)
def test_malformed_labels_name_file_and_line(festival_dir: Path, tmp_path: Path, case: str) -> None:
    lines = (festival_dir / "slt" / "0000.lab").read_text().splitlines()
    broken, line = _corrupt(lines, case)
    path = tmp_path / "broken.lab"
    path.write_text("\n".join(broken) + "\n")
    with pytest.raises(LabelFileError, match=rf"broken\.lab:{line}: ") as caught:
        read_labels(path)
    assert isinstance(caught.value, VocoderError)


def test_empty_and_monophone_label_files_are_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.lab"
    empty.write_text("\n")
    with pytest.raises(LabelFileError, match="empty.lab: no labels"):
        read_labels(empty)
    mono = tmp_path / "mono.lab"
    mono.write_text("0 1650000 pau\n1650000 2550000 hh\n")
    with pytest.raises(LabelFileError, match=r"mono.lab:1: not an HTS full-context label"):
        read_labels(mono)


def test_question_file_errors_name_the_line() -> None:
    with pytest.raises(QuestionSetError, match=r"q.hed:2: a CQS needs exactly one capture group"):
        parse_question_set('QS "a" {*-a+*}\nCQS "n" {/A:\\d+}\n', "q.hed")
    with pytest.raises(QuestionSetError, match=r"q.hed:1: expected QS"):
        parse_question_set("QS a *-a+*\n", "q.hed")
    with pytest.raises(QuestionSetError, match=r"q.hed:2: question 'a' is defined twice"):
        parse_question_set('QS "a" {*-a+*}\nQS "a" {*-b+*}\n', "q.hed")
