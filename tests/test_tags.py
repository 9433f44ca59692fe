"""Reading tagged sequences: first tag wins, aliases, validation reasons, lobster compatibility, robustness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ume_rl.rewards.modalities import MODALITIES, TAG_TO_MODALITY, normalize_modality
from ume_rl.rewards.tags import (
    INVALID_REASONS,
    extract_tagged_sequence,
    read_completions,
    wrap,
)


@pytest.mark.parametrize(
    ("text", "modality", "sequence"),
    [
        ("<smiles>CCO</smiles>", "SMILES", "CCO"),
        ("I think <protein> mkvl\n</protein> is it", "amino_acid", "MKVL"),
        ("<amino_acid>ACD</amino_acid>", "amino_acid", "ACD"),
        ("<DNA>acgt</DNA>", "nucleotide", "ACGT"),
        ("<Nucleotide>TTGA</nucleotide>", "nucleotide", "TTGA"),
        ("<protein>MKV <dna>ACGT</dna>", "nucleotide", "ACGT"),  # unclosed first tag is skipped
        ("<dna>AC</dna><protein>MK</protein>", "nucleotide", "AC"),  # first complete pair wins
    ],
)
def test_valid_sequences(text, modality, sequence):
    assert extract_tagged_sequence(text) == (modality, sequence, None)


@pytest.mark.parametrize(
    ("text", "expected", "reason"),
    [
        ("no tags at all", None, "no_tag"),
        ("<protein>MKV</dna>", None, "no_tag"),
        (None, None, "no_tag"),
        (["not", "text"], None, "no_tag"),
        ("<smiles>CCO</smiles>", "amino_acid", "wrong_modality"),
        ("<protein>   </protein>", None, "empty"),
        ("<protein>MKVB</protein>", None, "bad_alphabet"),
        ("<protein>MK VL</protein>", None, "bad_alphabet"),
        ("<dna>ACGU</dna>", None, "bad_alphabet"),
        ("<protein><dna>ACGT</dna></protein>", None, "bad_alphabet"),  # nested: the outer pair is first
        ("<smiles>C1CC</smiles>", None, "unparsable_smiles"),
        ("<smiles>CC O</smiles>", None, "unparsable_smiles"),  # RDKit would read 'O' as a name
        ("<smiles>not a molecule</smiles>", None, "unparsable_smiles"),
    ],
)
def test_invalid_reasons(text, expected, reason):
    result = extract_tagged_sequence(text, expected_modality=expected)
    assert result.reason == reason
    assert result.sequence is None


def test_too_long_by_characters_and_expected_modality_forms():
    assert extract_tagged_sequence("<dna>" + "A" * 50 + "</dna>", max_chars=49).reason == "too_long"
    assert extract_tagged_sequence("<dna>" + "A" * 50 + "</dna>", max_chars=50).reason is None
    assert set(INVALID_REASONS) == {
        "no_tag",
        "wrong_modality",
        "empty",
        "bad_alphabet",
        "unparsable_smiles",
        "too_long",
        "unknown_token",
    }


def test_read_completions_formats_and_modality_forms():
    texts = ["<smiles>CCO</smiles>", [{"role": "assistant", "content": "<dna>ACGT</dna>"}], "no tag"]
    assert [t.reason for t in read_completions(texts)] == [None, None, "no_tag"]
    # One modality string applies to every completion; it is never split into characters.
    assert [t.reason for t in read_completions(texts, "SMILES")] == [None, "wrong_modality", "no_tag"]
    per_row = read_completions(texts, ["SMILES", "nucleotide", None])
    assert [t.reason for t in per_row] == [None, None, "no_tag"]
    assert per_row[1] == ("nucleotide", "ACGT", None)
    assert read_completions(["<dna>" + "A" * 9 + "</dna>"], max_chars=8)[0].reason == "too_long"
    with pytest.raises(ValueError, match="3 completions but 2"):
        read_completions(texts, ["SMILES", "SMILES"])
    for expected in ("nucleotide", "dna", "DNA"):
        assert extract_tagged_sequence("<dna>ACGT</dna>", expected_modality=expected).reason is None
    with pytest.raises(ValueError, match="Unknown modality"):
        normalize_modality("rna")


def test_wrap_round_trips_every_modality():
    for modality, sequence in zip(MODALITIES, ("CCO", "MKV", "ACGT"), strict=True):
        assert extract_tagged_sequence(wrap(sequence, modality)) == (modality, sequence, None)


def test_adversarial_unclosed_tags_are_linear():
    # A backtracking regex is quadratic here (each opening tag scans to the end).
    text = "<protein>" * 200_000 + "<dna>ACGT</dna>"
    assert extract_tagged_sequence(text) == ("nucleotide", "ACGT", None)


_tags = st.sampled_from(sorted(TAG_TO_MODALITY) + ["Smiles", "PROTEIN", "rna"])
_pieces = st.one_of(
    st.text(max_size=30),
    _tags.map(lambda t: f"<{t}>"),
    _tags.map(lambda t: f"</{t}>"),
    st.text(alphabet="ACGTUMKVLBX ()=c1O\n", max_size=40),
)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(_pieces, max_size=12), expected=st.sampled_from([None, *MODALITIES]))
def test_any_text_gives_a_known_reason(pieces, expected):
    result = extract_tagged_sequence("".join(pieces), expected_modality=expected)
    assert result.reason in (None, *INVALID_REASONS)
    assert (result.sequence is None) == (result.reason is not None)
    if result.reason is None:
        assert result.modality in MODALITIES and result.sequence == result.sequence.strip()


def test_untagged_text_is_a_bare_sequence_only_when_asked():
    texts = ["CC(C)CC1=CC=C(C=C1)C(C)C(=O)O", "mkvl", "ACGU", "Here: CCO", "<dna>ACGT</dna>", "A" * 50]
    assert [t.reason for t in read_completions(texts)] == [
        "no_tag",
        "no_tag",
        "no_tag",
        "no_tag",
        None,
        "no_tag",
    ]
    detected = read_completions(texts, untagged="detect", max_chars=40)
    assert [(t.modality, t.sequence, t.reason) for t in detected] == [
        ("SMILES", "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O", None),
        ("amino_acid", "MKVL", None),
        (None, None, "no_tag"),  # U: neither DNA, protein nor SMILES
        (None, None, "no_tag"),  # prose around a sequence is not a bare sequence
        ("nucleotide", "ACGT", None),  # a tag pair still wins
        (None, None, "too_long"),  # longer than max_chars, before any parsing
    ]
    with pytest.raises(ValueError, match="untagged"):
        read_completions(texts, untagged="yes")


@pytest.mark.parametrize(
    ("item", "match"),
    [
        (None, r"completions\[1\] must be a string or a list of chat messages, got None"),
        (7, r"completions\[1\] must be a string .* got int 7"),
        (b"<dna>ACGT</dna>", r"completions\[1\] must be a string .* got bytes"),
        (
            [{"role": "assistant"}],
            r"completions\[1\]\[0\] must be a chat message, a dict with a string 'content'",
        ),
        ({"role": "assistant", "content": None}, r"completions\[1\]\[0\] must be a chat message"),
        ([{"role": "assistant", "content": "x"}, "text"], r"completions\[1\]\[1\] must be a chat message"),
    ],
)
def test_an_item_that_is_not_a_completion_is_a_type_error_naming_its_index(item, match):
    with pytest.raises(TypeError, match=match):
        read_completions(["<dna>ACGT</dna>", item])
