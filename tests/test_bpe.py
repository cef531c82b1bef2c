"""Byte-level BPE: hand-worked examples, the fast trainer against the naive one, encoding against Hugging Face
`tokenizers` given the same merges, round trips on arbitrary Unicode, determinism."""

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers

import coursekit.bpe
from coursekit import data
from coursekit.bpe import (BPETokenizer, merge_pair, most_frequent_pair, pair_counts, pretokenize, train_bpe,
                           train_bpe_naive)
from coursekit.gpt2_encoder import bytes_to_unicode


def train_fast(text, vocab_size):
    return train_bpe(text, vocab_size, progress=False)


TRAINERS = [pytest.param(train_bpe_naive, id="naive"), pytest.param(train_fast, id="fast")]

TEXTS = [
    pytest.param("", id="empty"),
    pytest.param("a", id="one-character"),
    pytest.param("hello world", id="ascii"),
    pytest.param("안녕하세요 👋 (hello in Korean!) 👨‍👩‍👧 🇫🇷 café naïve 中文", id="emoji-korean"),
    pytest.param("  multiple   spaces\t\ttabs\n\nnewlines, trailing  ",
                 id="whitespace"),
]


@pytest.fixture(scope="module")
def shakespeare():
    return data.read_text("tinyshakespeare")


@pytest.fixture(scope="module")
def tokenizer(shakespeare):
    return BPETokenizer(train_fast(shakespeare[:50_000], 400))


# --- pre-tokenization: GPT-2's split, expected chunks worked out by hand from the pattern ---

@pytest.mark.parametrize("text, chunks", [
    ("", []),
    ("Hello world's  end!\n", ["Hello", " world", "'s", " ", " end", "!", "\n"]),
    ("DON'T", ["DON", "'", "T"]),  # contractions are lowercase only
    ("I'm sure they'll", ["I", "'m", " sure", " they", "'ll"]),
    ("1234567 3.14", ["1234567", " 3", ".", "14"]),
    ("a\t\tb", ["a", "\t", "\t", "b"]),  # only a space, not a tab, joins the next word
    ("trailing  ", ["trailing", "  "]),
    ("😀!? ok", ["😀!?", " ok"]),
])
def test_pretokenize_splits_like_gpt2(text, chunks):
    assert pretokenize(text) == chunks


@given(st.text())
def test_pretokenize_chunks_join_back_to_the_text(text):
    assert "".join(pretokenize(text)) == text


# --- the two helpers ---

@pytest.mark.parametrize("ids, counts", [
    ([], {}),
    ([5], {}),
    ([1, 2, 3, 1, 2], {(1, 2): 2, (2, 3): 1, (3, 1): 1}),
    ([1, 1, 1], {(1, 1): 2}),
])
def test_pair_counts(ids, counts):
    assert pair_counts(ids) == counts


def test_pair_counts_adds_to_existing_counts():
    assert pair_counts([1, 2], {(1, 2): 5, (7, 7): 1}) == {(1, 2): 6, (7, 7): 1}


@pytest.mark.parametrize("ids, pair, merged", [
    ([1, 2, 3, 1, 2], (1, 2), [256, 3, 256]),
    ([1, 1, 1], (1, 1), [256, 1]),
    ([1, 1, 1, 1], (1, 1), [256, 256]),
    ([1, 2], (2, 1), [1, 2]),
    ([], (1, 2), []),
])
def test_merge_pair(ids, pair, merged):
    assert merge_pair(ids, pair, 256) == merged


def test_ties_go_to_the_smallest_pair():
    assert most_frequent_pair({(2, 1): 3, (1, 5): 3, (0, 9): 1}) == (1, 5)


# --- training: worked examples ---

@pytest.mark.parametrize("train", TRAINERS)
def test_worked_example_aaabdaaabac(train):
    # By hand (a=97, b=98, c=99, d=100): "aa" occurs 4 times -> 256. Then (256, a) and (a, b) both occur twice:
    # the tie goes to the smaller pair (97, 98) -> 257. Then (256, 257) occurs twice -> 258.
    merges = train("aaabdaaabac", 259)
    assert merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    tokenizer = BPETokenizer(merges)
    assert tokenizer.vocab[258] == b"aaab"
    assert tokenizer.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


@pytest.mark.parametrize("train", TRAINERS)
def test_merges_stay_inside_chunks_and_stop_when_nothing_is_left(train):
    # Chunks "ab", " ab", " ab": (a, b) x3 -> 256, then (space, 256) x2 -> 257, then no pair is left;
    # (b, space) is never counted because it crosses a chunk boundary.
    assert train("ab ab ab", 300) == {(97, 98): 256, (32, 256): 257}


@pytest.mark.parametrize("train", TRAINERS)
def test_vocab_smaller_than_the_bytes_is_refused(train):
    with pytest.raises(ValueError, match="at least 256"):
        train("hello", 255)


# --- training: the fast trainer learns exactly what the naive one learns ---

def test_fast_trainer_matches_naive_on_shakespeare(shakespeare):
    text = shakespeare[:50_000]
    merges = train_fast(text, 400)
    assert len(merges) == 144
    assert merges == train_bpe_naive(text, 400)


@pytest.mark.parametrize("text", TEXTS + [pytest.param("abcabcabc xyzxyz abab ba" * 3, id="many-ties")])
def test_fast_trainer_matches_naive_on_small_texts(text):
    assert train_fast(text, 300) == train_bpe_naive(text, 300)


def test_training_is_deterministic_across_processes(shakespeare, tmp_path):
    # String hashing is randomised per process; the merges must not depend on it (nor on set or dict order).
    text_file = tmp_path / "text.txt"
    text_file.write_text(shakespeare[:20_000], encoding="utf-8")
    script = ("import json, sys; from coursekit.bpe import train_bpe; "
              "text = open(sys.argv[1], encoding='utf-8').read(); "
              "print(json.dumps(list(train_bpe(text, 300, progress=False).items())))")
    package_root = str(Path(coursekit.__file__).parents[1])  # the subprocesses import the coursekit under test
    runs = []
    for seed in ["1", "2"]:
        environment = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": package_root}
        output = subprocess.run([sys.executable, "-c", script, str(text_file)], capture_output=True, text=True,
                                check=True, env=environment).stdout
        runs.append(json.loads(output))
    assert runs[0] == runs[1]
    assert [[list(pair), new_id] for pair, new_id in train_fast(shakespeare[:20_000], 300).items()] == runs[0]


# --- encoding and decoding ---

@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_round_trip_long_text(tokenizer, shakespeare):
    ids = tokenizer.encode(shakespeare)
    assert len(ids) < len(shakespeare.encode("utf-8")) * 0.7  # 144 merges compress English by well over 30%
    assert tokenizer.decode(ids) == shakespeare


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_arbitrary_unicode(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_decode_replaces_a_split_character():
    assert BPETokenizer({}).decode(list("é!".encode("utf-8"))[1:]) == "\ufffd!"


def hugging_face_tokenizer(tokenizer: BPETokenizer) -> Tokenizer:
    """Hugging Face's BPE given our merges, spelled with GPT-2's printable byte characters as HF expects."""
    byte_to_char = bytes_to_unicode()
    spell = {id: "".join(byte_to_char[byte] for byte in token) for id, token in tokenizer.vocab.items()}
    merges = [(spell[first], spell[second]) for (first, second) in tokenizer.merges]
    hf = Tokenizer(models.BPE(vocab={token: id for id, token in spell.items()}, merges=merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return hf


@pytest.mark.parametrize("text", TEXTS + [pytest.param(None, id="shakespeare-200k")])
def test_encode_matches_hugging_face_with_the_same_merges(tokenizer, shakespeare, text):
    text = shakespeare[:200_000] if text is None else text
    assert tokenizer.encode(text) == hugging_face_tokenizer(tokenizer).encode(text).ids


def test_encode_and_show_work_prints_each_merge_in_order(capsys):
    tokenizer = BPETokenizer({(97, 97): 256, (97, 98): 257, (256, 257): 258})
    assert tokenizer.encode_and_show_work("aaab!") == [258, 33]
    assert capsys.readouterr().out.splitlines() == [
        "chunk 'aaab', bytes [97, 97, 97, 98]",
        "  merge 'a' + 'a' -> 'aa' (id 256)",
        "  merge 'a' + 'b' -> 'ab' (id 257)",
        "  merge 'aa' + 'ab' -> 'aaab' (id 258)",
        "chunk '!', bytes [33]",
    ]


def test_encode_and_show_work_returns_what_encode_returns(tokenizer, capsys):
    text = "First Citizen: we are accounted poor citizens, the patricians good. 👋"
    assert tokenizer.encode_and_show_work(text) == tokenizer.encode(text)
    shown = capsys.readouterr().out
    assert shown.count("  merge ") == len(text.encode("utf-8")) - len(tokenizer.encode(text))


def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "bpe.json")
    loaded = BPETokenizer.load(tmp_path / "bpe.json")
    assert loaded.merges == tokenizer.merges
    assert list(loaded.merges) == list(tokenizer.merges)
    assert loaded.vocab == tokenizer.vocab


def test_docstring_examples_are_true():
    assert doctest.testmod(coursekit.bpe).failed == 0
