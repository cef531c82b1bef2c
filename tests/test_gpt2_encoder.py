"""GPT-2's tokenizer from scratch gives the ids of Hugging Face `tokenizers` loaded from the same files."""

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import ByteLevelBPETokenizer

import coursekit.gpt2_encoder
from coursekit import data
from coursekit.gpt2_encoder import GPT2Encoder, bytes_to_unicode, read_merges

TEXTS = [
    pytest.param("", id="empty"),
    pytest.param("a", id="one-character"),
    pytest.param("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.",
                 id="shakespeare"),
    pytest.param("café naïve résumé Ångström façade", id="accents"),
    pytest.param("👋 🙂🙂 👨‍👩‍👧‍👦 👩🏽‍💻 🇫🇷🇯🇵 ❤️", id="emoji-zwj-flags"),
    pytest.param("中文字符 日本語のテキスト", id="cjk"),
    pytest.param("안녕하세요, 세계!", id="korean"),
    pytest.param("two  spaces   three\ttab\t\ttwo tabs\n\n\nnewlines \n trailing   ",
                 id="whitespace"),
    pytest.param("   leading spaces", id="leading-spaces"),
    pytest.param("1234567 3.14 2024-01-01 ½ ² Ⅻ", id="numbers"),
    pytest.param("I'm sure they'll go. DON'T! we've, you'd, it's, O'Neill", id="contractions"),
    pytest.param("charmingly anachronistic", id="charmingly"),
    pytest.param("cirkumnavigate", id="misspelled"),
    pytest.param("circumnavigate", id="spelled"),
    pytest.param("<|endoftext|> \x00\x1f\x7f non\u00a0breaking \u3000ideographic", id="controls-and-odd-spaces"),
]


@pytest.fixture(scope="module")
def encoder():
    return GPT2Encoder.from_files()


@pytest.fixture(scope="module")
def hugging_face():
    return ByteLevelBPETokenizer(vocab=str(data.path("gpt2-encoder")), merges=str(data.path("gpt2-merges")))


def test_the_byte_table_is_printable_and_one_to_one():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert all(char.isprintable() and not char.isspace() for char in table.values())
    assert all(table[byte] == chr(byte) for byte in range(ord("!"), ord("~") + 1))  # visible ASCII is itself
    assert (table[ord(" ")], table[ord("\n")], table[0]) == ("\u0120", "\u010a", "\u0100")  # Ġ, Ċ, Ā


def test_reads_the_merges_file():
    merges = read_merges(data.path("gpt2-merges"))
    assert len(merges) == 50_000
    assert merges[:2] == [("Ġ", "t"), ("Ġ", "a")]


def test_known_gpt2_ids(encoder):
    # Widely documented GPT-2 ids: "Hello" 15496, " world" 995, " the" 262, <|endoftext|> 50256.
    assert encoder.encode("Hello world") == [15496, 995]
    assert encoder.encode(" the") == [262]
    assert len(encoder.encoder) == 50257
    assert encoder.decode([50256]) == "<|endoftext|>"


@pytest.mark.parametrize("text", TEXTS)
def test_matches_hugging_face(encoder, hugging_face, text):
    assert encoder.encode(text) == hugging_face.encode(text).ids


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(encoder, text):
    assert encoder.decode(encoder.encode(text)) == text


def test_matches_hugging_face_on_a_large_slice_of_shakespeare(encoder, hugging_face):
    text = data.read_text("tinyshakespeare")[:300_000]
    ids = encoder.encode(text)
    assert ids == hugging_face.encode(text).ids
    assert encoder.decode(ids) == text


def test_a_misspelling_costs_more_tokens(encoder):
    assert len(encoder.encode("cirkumnavigate")) > len(encoder.encode("circumnavigate"))


# Assigned characters only (Python's Unicode database), no surrogates: a character Unicode added after the
# version Hugging Face's regex engine knows could be a letter to one and not to the other.
ASSIGNED_CHARACTERS = st.characters(exclude_categories=("Cs", "Cn", "Co"))


@settings(max_examples=200, deadline=None)
@given(st.text(ASSIGNED_CHARACTERS))
def test_matches_hugging_face_on_arbitrary_text(encoder, hugging_face, text):
    ids = encoder.encode(text)
    assert ids == hugging_face.encode(text).ids
    assert encoder.decode(ids) == text


def test_merge_ids_must_grow_with_rank():
    with pytest.raises(ValueError, match="grow with merge rank"):
        GPT2Encoder({"a": 0, "b": 1, "ab": 3, "ba": 2}, [("a", "b"), ("b", "a")])


def test_docstring_examples_are_true():
    assert doctest.testmod(coursekit.gpt2_encoder).failed == 0
