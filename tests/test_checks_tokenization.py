"""The notebook 01 checks: they pass the solution's answers and valid alternatives, and name each plausible mistake.

The reference answers are the solution notebook's own exercise cells, executed here; the alternatives and the
buggy versions are written out below, one small function each. No expected value is copied from the checks:
each test only asks whether a check passes, or which mistake its message names.
"""

import contextlib
import copy
import functools
import io
import itertools
import json
import tempfile
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import regex
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from coursekit import data
from coursekit.bpe import GPT2_SPLIT_PATTERN
from coursekit import checks
from coursekit.checks.core import Outcome, ProbeError

SOLUTION = Path(__file__).resolve().parents[1] / "solutions" / "01_tokenization.ipynb"
TEXT = data.read_text("tinyshakespeare")


def _solution_namespace() -> dict:
    """Run the solution notebook's exercise cells (and the two set-up cells they use) in one namespace."""
    cells = json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]
    namespace = {"text": TEXT, "regex": regex, "data": data}
    for cell in cells:
        source = "".join(cell["source"])
        is_exercise = "exercise" in cell.get("metadata", {}).get("coursekit", {})
        is_set_up = "stoi = " in source or "merge_ranks = " in source
        if cell["cell_type"] == "code" and (is_exercise or is_set_up):
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"{SOLUTION.name}, a cell", "exec"), namespace)
    return namespace


REF = _solution_namespace()
chars, stoi, itos = REF["chars"], REF["stoi"], REF["itos"]
byte_encoder, merge_ranks, gpt2_vocabulary = REF["byte_encoder"], REF["merge_ranks"], REF["gpt2_vocabulary"]
merge_pair = REF["merge_pair"]  # the alternatives below build on the solution's merge_pair, as a student's would


def assert_passes(check, *student):
    check(*student)  # raises AssertionError with the check's message if not


def assert_names(check, student, mistake):
    with pytest.raises(AssertionError, match=mistake):
        check(student)


# ---------------------------------------------------------------- 1.1 chars

CHARS_VALID = {
    "reference": chars,
    "sorted Counter keys": sorted(Counter(TEXT)),
    "sorted dict.fromkeys": sorted(dict.fromkeys(TEXT)),
}

CHARS_BUGS = {
    "should be sorted": list(dict.fromkeys(TEXT)),  # order of first appearance
    "missing 26 character.*'A', 'B', 'C'": sorted(set(TEXT.lower())),
    "missing .* character": sorted(set(TEXT[:2000])),  # built from a sample of the text
    "not one string": "".join(sorted(set(TEXT))),
    "duplicates": sorted(TEXT),
    "should be a single character; found '": sorted(set(TEXT.split())),  # words, not characters
    "got a set": set(TEXT),
    "should be sorted,": sorted(set(TEXT), reverse=True),
    "missing 1 character.*hint: '\\\\n'": sorted(set(TEXT) - {"\n"}),
    "is missing 1 character\\(s\\)": sorted(set(TEXT))[1:],  # the first (a newline) dropped
    "not in the text: \\['€'\\]": sorted(set(TEXT) | {"€"}),
}


@pytest.mark.parametrize("name", CHARS_VALID)
def test_chars_accepts(name):
    assert_passes(checks.check_chars, CHARS_VALID[name])


@pytest.mark.parametrize("mistake", CHARS_BUGS)
def test_chars_names_the_mistake(mistake):
    assert_names(checks.check_chars, CHARS_BUGS[mistake], mistake)


def test_chars_check_does_not_change_the_list():
    unsorted = list(dict.fromkeys(TEXT))
    before = list(unsorted)
    with pytest.raises(AssertionError):
        checks.check_chars(unsorted)
    assert unsorted == before


# ---------------------------------------------------------------- 1.2 encode


def encode_by_key_error(text):
    return [stoi[char] for char in text]  # a bare KeyError: '€' from deep inside the dictionary


def encode_by_index(text):
    return list(map(chars.index, text))  # ValueError: "'€' is not in list"


def encode_reraising(text):
    try:
        return [stoi[char] for char in text]
    except KeyError as error:
        raise ValueError(f"unknown character {error.args[0]!r}") from None


def encode_shifted(text):
    return [stoi[char] + 1 for char in text]


def encode_code_points(text):
    return [ord(char) for char in text]


FIRST_SEEN = {char: i for i, char in enumerate(dict.fromkeys(TEXT))}  # ids by first appearance: not sorted
FIRST_SEEN_CHARS = list(FIRST_SEEN)


def encode_unsorted(text):
    return [FIRST_SEEN[char] for char in text]


def encode_skipping_unknown(text):
    return [stoi[char] for char in text if char in stoi]


def encode_unknown_as_zero(text):
    return [stoi.get(char, 0) for char in text]


def encode_vague_error(text):
    if any(char not in stoi for char in text):
        raise ValueError("unknown character")
    return [stoi[char] for char in text]


def encode_quoting_the_text(text):
    if any(char not in stoi for char in text):
        raise ValueError(f"cannot encode {text!r}: it has a character outside the vocabulary")
    return [stoi[char] for char in text]


def encode_quoting_both(text):
    for position, char in enumerate(text):
        if char not in stoi:
            raise KeyError(f"{text!r} has {char!r} at position {position}, which is not in the vocabulary")
    return [stoi[char] for char in text]


def encode_cached_by_length(text, _cache={}):
    return _cache.setdefault(len(text), REF["encode"](text))


def encode_rewriting_whitespace(text):
    return REF["encode"](text.replace("\r\n", "\n").replace("\t", " "))  # hides a tab instead of reporting it


ENCODE_BUGS = {
    "names the character only by quoting the whole text.*name the character itself \('€'\)": encode_quoting_the_text,
    "shifted by one": encode_shifted,
    "Unicode code points": encode_code_points,
    "not its position in the sorted chars": encode_unsorted,
    "should raise an error because '€'.*returned list": encode_skipping_unknown,
    "should raise an error because '€'.*returned list .*, 0[,.\\]]": encode_unknown_as_zero,
    "should name it.*ValueError: unknown character": encode_vague_error,
    "bare KeyError: '€' from the dictionary lookup": encode_by_key_error,
    "one id per character.*spaces and newlines too": lambda text: [stoi[c] for c in text.strip()],
    "one id per character \\(": lambda text: [stoi[c] for c in "".join(text.split())],
    "encode\\(' First Citizen.*should be": lambda text: [stoi[c] for c in text.lower()],
    "not its position in the sorted chars.*not from a set": lambda text: [64 - stoi[c] for c in text],  # reversed
    "should return a list of ints, got a Tensor": lambda text: torch.tensor([stoi[c] for c in text]),
    "should give one id per character \\(5 ids\\), got 4": lambda text: [stoi[c] for c in dict.fromkeys(text)],
    "should give one id per character \\(5 ids\\), got 4: \\[46, 43, 50, 50\\]": lambda text: [
        stoi[c] for c in text[:-1]],
    "should return a list of ints \\(ids\\), got \\['46', '43'": lambda text: [str(stoi[c]) for c in text],
    "should return a list of ints \\(ids\\), got \\[46.0, 43.0": lambda text: [float(stoi[c]) for c in text],
    "returned the ids of another text given in another call": encode_cached_by_length,
    "should raise an error because '\\\\t' is not in the vocabulary": encode_rewriting_whitespace,
    "code points \\(ord\\) or UTF-8 bytes": lambda text: list(text.encode("utf-8")),
}
# Edge cases: encode is right on the vocabulary's characters and only the unknown character is mishandled.
ENCODE_EDGE = ["should raise an error because '€'.*returned list", "should raise an error because '€'.*returned list .*, 0[,.\\]]",
               "should name it.*ValueError: unknown character", "bare KeyError: '€' from the dictionary lookup",
               "names the character only by quoting the whole text.*name the character itself \\('€'\\)",
               "should raise an error because '\\\\t' is not in the vocabulary"]


@pytest.mark.parametrize("encode", [REF["encode"], encode_by_index, encode_reraising, encode_quoting_both])
def test_encode_accepts(encode):
    assert_passes(checks.check_encode, encode)


@pytest.mark.parametrize("mistake", ENCODE_BUGS)
def test_encode_names_the_mistake(mistake):
    assert_names(checks.check_encode, ENCODE_BUGS[mistake], mistake)


# ---------------------------------------------------------------- 1.3 decode


def decode_by_map(ids):
    return "".join(map(itos.__getitem__, map(int, ids)))


def decode_by_concatenation(ids):
    out = ""
    for i in ids:
        out += itos[int(i)]
    return out


DECODE_BUGS = {
    "should return one string": lambda ids: [itos[i] for i in ids],
    "space between the characters": lambda ids: " ".join(itos[i] for i in ids),
    "chr\\(id\\)": lambda ids: "".join(chr(i) for i in ids),
    "off by one position": lambda ids: "".join(chars[i - 1] for i in ids),  # itos built with enumerate(chars, 1)
    "should give back 'hello', got 'HELLO'": lambda ids: "".join(itos[int(i)] for i in ids).upper(),
    "a tensor are 0-d tensors.*itos\\[int\\(i\\)\\]": lambda ids: "".join(itos[i] for i in ids),
    "raised AttributeError.*ids may be a list of ints or a 1-D tensor": lambda ids: "".join(itos[i] for i in ids.tolist()),
    "should give back 'hello', got 'olleh'": lambda ids: "".join(itos[int(i)] for i in ids)[::-1],
    "should give back ' First.*got 'First": lambda ids: "".join(itos[int(i)] for i in ids).strip(),
    "should give back 'hello', got 'hell'": lambda ids: "".join(itos[int(i)] for i in list(ids)[:-1]),
    "should return a str, got a bytes": lambda ids: "".join(itos[int(i)] for i in ids).encode(),
    "should give back 'hello', got '": lambda ids: "".join(FIRST_SEEN_CHARS[int(i)] for i in ids),
    "should give back ' First Citizen:\\\\nBefore.*got ' First Citizen: Before": lambda ids: "".join(
        itos[int(i)] for i in ids).replace("\n", " "),
}
DECODE_BUGS.update({
    "decode\\(\\[46, 43, 65, 53\\]\\) should raise an error because 65 is no id.*returned str 'he\\?o'":
        lambda ids: "".join(itos.get(int(i), "?") for i in ids),
    "should raise an error because 65 is no id.*returned str 'he\\\\no'":
        lambda ids: "".join(itos[int(i) % len(itos)] for i in ids),
    "returned the text of other ids given in another call":
        lambda ids, _cache={}: _cache.setdefault(len(ids), "".join(itos[int(i)] for i in ids)),
})
DECODE_EDGE = ["a tensor are 0-d tensors.*itos\\[int\\(i\\)\\]", *list(DECODE_BUGS)[-3:-1]]


def decode_by_indexing_chars(ids):
    return "".join(chars[int(i)] for i in ids)  # an unknown id raises IndexError: 'list index out of range'


@pytest.mark.parametrize("decode", [REF["decode"], decode_by_map, decode_by_concatenation, decode_by_indexing_chars])
def test_decode_accepts(decode):
    assert_passes(checks.check_decode, decode)


@pytest.mark.parametrize("mistake", DECODE_BUGS)
def test_decode_names_the_mistake(mistake):
    assert_names(checks.check_decode, DECODE_BUGS[mistake], mistake)


# ---------------------------------------------------------------- 3.1 pair_counts


def pair_counts_by_counter(ids):
    return Counter(zip(ids, ids[1:]))


def pair_counts_by_index(ids):
    counts = defaultdict(int)
    for i in range(len(ids) - 1):
        counts[ids[i], ids[i + 1]] += 1
    return counts


def pair_counts_by_comprehension(ids):
    pairs = list(zip(ids, ids[1:]))
    return {pair: pairs.count(pair) for pair in pairs}


def pair_counts_without_last(ids):
    return Counter((ids[i], ids[i + 1]) for i in range(len(ids) - 2))


def pair_counts_step_two(ids):
    return Counter((ids[i], ids[i + 1]) for i in range(0, len(ids) - 1, 2))


def pair_counts_without_overlaps(ids):
    counts, i = {}, 0
    while i < len(ids) - 1:
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
        i += 2 if i + 2 < len(ids) and (ids[i + 1], ids[i + 2]) == pair else 1  # "don't count a 7 twice"
    return counts


def pair_counts_set_to_one(ids):
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = 1
    return counts


def pair_counts_from_one(ids):
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 1) + 1  # the first sighting already counts twice
    return counts


PAIR_COUNTS_BUGS = {
    "the last pair is missing": pair_counts_without_last,
    "every other pair": pair_counts_step_two,
    "overlapping pairs count too: \\[7, 7, 7\\]": pair_counts_without_overlaps,
    "each count was set to 1": pair_counts_set_to_one,
    "should return a dict .*got list": lambda ids: list(zip(ids, ids[1:])),
    "keys should be pairs": lambda ids: Counter(f"{a},{b}" for a, b in zip(ids, ids[1:])),
    "keys should be pairs \\(a, b\\) as tuples, got the key 1": lambda ids: Counter(ids),  # single ids
    "pair_counts\\(\\[1, 2, 3, 1, 2\\]\\) should be .*got .*\\(2, 1\\)": lambda ids: Counter(zip(ids[1:], ids)),
    "pair_counts\\(\\[1, 2, 3, 1, 2\\]\\) should be .*got .*\\(1, 3\\)": lambda ids: Counter(zip(ids, ids[2:])),
    "pair_counts\\(\\[1, 2, 3, 1, 2\\]\\) should be .*got .*\\(1, 2\\): 3": pair_counts_from_one,
    "the first or the last pair is missing": lambda ids: Counter(zip(ids[1:], ids[2:])),
    "pair_counts\\(\\[1, 2, 3, 1, 2\\]\\) should be .*got .*\\(1, 3\\): 1": lambda ids: Counter(
        tuple(sorted(pair)) for pair in zip(ids, ids[1:])),
    "pair_counts\\(\\[7, 7, 7\\]\\) should be \\{\\(7, 7\\): 2\\}, got \\{\\}": lambda ids: Counter(
        (a, b) for a, b in zip(ids, ids[1:]) if a != b),
}


@pytest.mark.parametrize("function", [REF["pair_counts"], pair_counts_by_counter, pair_counts_by_index,
                                      pair_counts_by_comprehension])
def test_pair_counts_accepts(function):
    assert_passes(checks.check_pair_counts, function)


@pytest.mark.parametrize("mistake", PAIR_COUNTS_BUGS)
def test_pair_counts_names_the_mistake(mistake):
    assert_names(checks.check_pair_counts, PAIR_COUNTS_BUGS[mistake], mistake)


# ---------------------------------------------------------------- 3.2 merge_pair


def merge_with_skip_flag(ids, pair, new_id):
    merged, skip = [], False
    for i, current in enumerate(ids):
        if skip:
            skip = False
        elif i + 1 < len(ids) and (current, ids[i + 1]) == pair:
            merged.append(new_id)
            skip = True
        else:
            merged.append(current)
    return merged


def merge_a_copy_in_place(ids, pair, new_id):
    ids, i = list(ids), 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


def merge_scanning(matches=lambda ids, i, pair: (ids[i], ids[i + 1]) == pair, step=2, stop=0):
    """A left-to-right merge_pair with one choice changed, so each variant below differs from a correct one in one way."""
    def merge(ids, pair, new_id):
        merged, i = [], 0
        while i < len(ids) - stop:
            if i + 1 < len(ids) and matches(ids, i, pair):
                merged.append(new_id)
                i += step
            else:
                merged.append(ids[i])
                i += 1
        return merged
    return merge


merge_dropping_last = merge_scanning(stop=1)  # never looks at the last id on its own
merge_first_only_checked = merge_scanning(matches=lambda ids, i, pair: ids[i] == pair[0])  # (1, anything) merged
merge_skipping_three = merge_scanning(step=3)


def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


def merge_without_skipping(ids, pair, new_id):
    return [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:])] + ids[-1:]


def merge_from_the_right(ids, pair, new_id):
    merged, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            merged.append(new_id)
            i -= 2
        else:
            merged.append(ids[i])
            i -= 1
    return merged[::-1]


def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


MERGE_BUGS = {
    "the last id is dropped": merge_dropping_last,
    "changed the list it was given": merge_in_place,
    "skip both ids of the pair": merge_without_skipping,
    "scan from the left.*should be \\[256, 7\\], got \\[7, 256\\]": merge_from_the_right,
    "only the first occurrence": merge_first_only,
    "merged as text \\(str.replace\\)": lambda ids, pair, new_id: [int(i) for i in " ".join(map(str, ids)).replace(
        f"{pair[0]} {pair[1]}", str(new_id)).split()],
    "should return a new list, got a NoneType": lambda ids, pair, new_id: None,
    "the pair was matched in either order": lambda ids, pair, new_id: merge_pair(
        merge_pair(ids, pair, new_id), pair[::-1], new_id),
    "merge_pair\\(\\[2, 1, 2, 2, 1, 2, 1, 1, 2, 21, 12, 7\\], \\(1, 2\\), 257\\) should be": merge_first_only_checked,
    "merge_pair\\(\\[1, 2, 3, 1, 2\\], \\(1, 2\\), 256\\) should be \\[256, 3, 256\\], got \\[256, 256\\]": merge_skipping_three,
    "merge_pair\\(\\[1, 2, 3, 1, 2\\], \\(1, 2\\), 256\\) should be \\[256, 3, 256\\], got \\[257": lambda ids, pair, new_id: merge_pair(
        ids, pair, new_id + 1),
}


@pytest.mark.parametrize("function", [REF["merge_pair"], merge_with_skip_flag, merge_a_copy_in_place])
def test_merge_pair_accepts(function):
    assert_passes(checks.check_merge_pair, function)


@pytest.mark.parametrize("mistake", MERGE_BUGS)
def test_merge_pair_names_the_mistake(mistake):
    assert_names(checks.check_merge_pair, MERGE_BUGS[mistake], mistake)


# ---------------------------------------------------------------- 3.3 train_bpe


def trainer(pick, start=lambda text: list(text.encode("utf-8")), new_ids=lambda size: range(256, size),
            recount=True, apply=True, stop=True):
    """A train_bpe built from one choice per step, so each variant below differs from a correct one in one way."""
    def train_bpe(text, vocab_size):
        ids, merges = start(text), {}
        counts = Counter(zip(ids, ids[1:]))
        for new_id in new_ids(vocab_size):
            if recount:
                counts = Counter(zip(ids, ids[1:]))
            if stop and not counts:
                break
            pair = pick(counts, merges)
            merges[pair] = new_id
            if apply:
                ids = merge_pair(ids, pair, new_id)
        return merges
    return train_bpe


def most_common(counts, merges):  # among ties, the pair seen first
    return counts.most_common(1)[0][0]


def smallest_among_ties(counts, merges):
    return min(counts, key=lambda pair: (-counts[pair], pair))


def largest_among_ties(counts, merges):
    return max(counts, key=lambda pair: (counts[pair], pair))


def not_yet_merged(counts, merges):  # with counts taken once: the most frequent pair not merged yet
    return next(pair for pair, _ in counts.most_common() if pair not in merges)


TRAIN_VALID = {
    "reference": REF["train_bpe"],
    "Counter.most_common": trainer(most_common),
    "smallest pair among ties": trainer(smallest_among_ties),
    "largest pair among ties": trainer(largest_among_ties),
}

def train_with_buggy_merge(text, vocab_size):  # a merge_pair that does not skip the pair's second id
    ids, merges = list(text.encode("utf-8")), {}
    for new_id in range(256, vocab_size):
        counts = Counter(zip(ids, ids[1:]))
        if not counts:
            break
        pair = counts.most_common(1)[0][0]
        merges[pair] = new_id
        ids = [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:])] + ids[-1:]
    return merges


TRAIN_BUGS = {
    "learned on characters .*not on bytes": trainer(most_common, start=lambda text: [ord(c) for c in text]),
    "learned on characters \\(code points, ord\\)": trainer(smallest_among_ties,
                                                             start=lambda text: [ord(c) for c in text]),
    "occurs 0 times at that point.*count the pairs again": trainer(not_yet_merged, recount=False),
    "got 1: .*apply it to the ids": trainer(most_common, apply=False),
    "should learn 20 merges, got 21": trainer(most_common, new_ids=lambda size: range(256, size + 1)),
    "new ids should be 256, 257, .*got \\[0, 1, 2": trainer(most_common, new_ids=lambda size: range(size - 256)),
    "one of the least frequent pairs.*not min": trainer(lambda counts, merges: min(counts, key=counts.get)),
    "the pair is stored reversed": lambda text, size: {(b, a): i for (a, b), i in REF["train_bpe"](text, size).items()},
    "keys and values are swapped": lambda text, size: {v: k for k, v in REF["train_bpe"](text, size).items()},
    "should return a dict .*got list": lambda text, size: list(REF["train_bpe"](text, size)),
    "should learn 20 merges, got 19": trainer(most_common, new_ids=lambda size: range(256, size - 1)),
    "merge 0 is .*not on characters|occurs .* times at that point": trainer(
        most_common, start=lambda text: list("".join(text.split()).encode("utf-8"))),  # the spaces dropped
    "stops early when no pair is left.*raised": trainer(most_common, stop=False),
    "merge [0-9]+ was .*: after each merge, apply it to the ids": train_with_buggy_merge,
}
TRAIN_EDGE = ["stops early when no pair is left.*raised"]


@pytest.mark.parametrize("name", TRAIN_VALID)
def test_train_bpe_accepts(name):
    assert_passes(checks.check_train_bpe, TRAIN_VALID[name])


@pytest.mark.parametrize("mistake", TRAIN_BUGS)
def test_train_bpe_names_the_mistake(mistake):
    assert_names(checks.check_train_bpe, TRAIN_BUGS[mistake], mistake)


# ---------------------------------------------------------------- 3.4 bpe_encode


def encode_in_merge_order(text, merges):
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():  # dicts keep the order merges were learned in
        ids = merge_pair(ids, pair, new_id)
    return ids


def encode_by_position(text, merges):
    ids = list(text.encode("utf-8"))
    while True:
        positions = [i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) in merges]
        if not positions:
            return ids
        best = min(positions, key=lambda i: merges[ids[i], ids[i + 1]])
        ids = merge_pair(ids, (ids[best], ids[best + 1]), merges[ids[best], ids[best + 1]])


def encode_newest_first(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = max((p for p in zip(ids, ids[1:]) if p in merges), key=merges.get, default=None)
        if pair is None:
            break
        ids = merge_pair(ids, pair, merges[pair])
    return ids


def encode_by_frequency(choose):
    """A bpe_encode that picks which merge to apply by how often its pair occurs: choose(counts) -> pair."""
    def encode(text, merges):
        ids = list(text.encode("utf-8"))
        while True:
            counts = Counter(p for p in zip(ids, ids[1:]) if p in merges)
            if not counts:
                return ids
            pair = choose(counts, merges)
            ids = merge_pair(ids, pair, merges[pair])
    return encode


encode_most_frequent_first = encode_by_frequency(lambda counts, merges: counts.most_common(1)[0][0])
encode_least_frequent_first = encode_by_frequency(lambda counts, merges: min(counts, key=lambda p: (counts[p],
                                                                                                -merges[p])))


def _merge_all(ids, merges):
    for pair, new_id in merges.items():
        ids = merge_pair(ids, pair, new_id)
    return ids


def encode_one_pass(text, merges):
    ids = list(text.encode("utf-8"))
    for pair in list(zip(ids, ids[1:])):  # the pairs of the bytes only: never the pairs a merge creates
        if pair in merges:
            ids = merge_pair(ids, pair, merges[pair])
    return ids


def encode_without_length_guard(text, merges):
    ids = list(text.encode("utf-8"))
    while True:
        pair = min(zip(ids, ids[1:]), key=lambda pair: merges.get(pair, float("inf")))
        if pair not in merges:
            return ids
        ids = merge_pair(ids, pair, merges[pair])


def encode_leftmost_first(text, merges):  # the first pair (by position) that is in merges, not the earliest learned
    ids = list(text.encode("utf-8"))
    while True:
        pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)
        if pair is None:
            return ids
        ids = merge_pair(ids, pair, merges[pair])


def encode_one_merge(text, merges):
    ids = list(text.encode("utf-8"))
    present = [p for p in zip(ids, ids[1:]) if p in merges]
    return merge_pair(ids, min(present, key=merges.get), merges[min(present, key=merges.get)]) if present else ids


BPE_ENCODE_BUGS = {
    "returned the raw bytes": lambda text, merges: list(text.encode("utf-8")),
    "in the order they were learned: .*lowest new id": encode_newest_first,
    "merged the most frequent pair first.*in the order they were learned": encode_most_frequent_first,
    "bpe_encode\\('the theme'\\) should be .*apply the merges in the order they were learned": encode_one_pass,
    "not the characters' code points": lambda text, merges: _merge_all([ord(char) for char in text], merges),
    "bpe_encode\\(''\\).*min\\(\\) arg is an empty sequence": encode_without_length_guard,
    "should return a list of ints, got a bytes": lambda text, merges: text.encode("utf-8"),
    "you merged the least frequent pair first": encode_least_frequent_first,
    "bpe_encode\\('the theme'\\) should be \\[257, 260\\], got \\[116, 256, 32": lambda text, merges: _merge_all(
        list(text.encode("utf-8")), dict(reversed(list(merges.items())))),  # the newest merge first, one pass
    "bpe_encode\\('oh hi, he has his hat'\\) should be": encode_leftmost_first,
    "bpe_encode\\('naïve café 🙂'\\) should be": lambda text, merges: _merge_all(
        list(text.encode("ascii", errors="ignore")), merges),
    "should return a list of ints, got a tuple": lambda text, merges: tuple(_merge_all(list(text.encode()), merges)),
    "only one merge was applied": encode_one_merge,
}
BPE_ENCODE_EDGE = ["bpe_encode\\(''\\).*min\\(\\) arg is an empty sequence"]


@pytest.mark.parametrize("encode", [REF["bpe_encode"], encode_in_merge_order, encode_by_position])
def test_bpe_encode_accepts(encode):
    assert_passes(checks.check_bpe_encode, encode)


@pytest.mark.parametrize("mistake", BPE_ENCODE_BUGS)
def test_bpe_encode_names_the_mistake(mistake):
    assert_names(checks.check_bpe_encode, BPE_ENCODE_BUGS[mistake], mistake)


# ---------------------------------------------------------------- 3.5 bpe_decode


def token_bytes_of(merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for (first, second), new_id in merges.items():
        vocab[new_id] = vocab[first] + vocab[second]
    return vocab


def decode_recursively(ids, merges):
    parts = {new_id: pair for pair, new_id in merges.items()}

    def spell(i):
        return bytes([i]) if i < 256 else spell(parts[i][0]) + spell(parts[i][1])
    return b"".join(spell(i) for i in ids).decode("utf-8", errors="replace")


def decode_with_bytearray(ids, merges):
    vocab, out = token_bytes_of(merges), bytearray()
    for i in ids:
        out.extend(vocab[i])
    return out.decode("utf-8", "replace")


def decode_with_reversed_pairs(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for (first, second), new_id in merges.items():
        vocab[new_id] = vocab[second] + vocab[first]
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


BPE_DECODE_BUGS = {
    "crashed with UnicodeDecodeError.*errors='replace'":
        lambda ids, merges: b"".join(token_bytes_of(merges)[i] for i in ids).decode("utf-8"),
    "join all the bytes first and decode once":
        lambda ids, merges: "".join(token_bytes_of(merges)[i].decode("utf-8", errors="replace") for i in ids),
    "errors='ignore' drops":
        lambda ids, merges: b"".join(token_bytes_of(merges)[i] for i in ids).decode("utf-8", errors="ignore"),
    "should return a str: join the bytes": lambda ids, merges: b"".join(token_bytes_of(merges)[i] for i in ids),
    "should return a str: join": lambda ids, merges: [token_bytes_of(merges)[i] for i in ids],
    "bpe_decode\\(\\[257, 260\\]\\) should be 'the theme'": decode_with_reversed_pairs,
    "bpe_decode\\(\\[110, 97, 195, 175": lambda ids, merges: b"".join(
        {**token_bytes_of(merges), **{i: chr(i).encode() for i in range(256)}}[i] for i in ids).decode("utf-8", "replace"),
    "bpe_decode\\(\\[110, 97, 195, 175.*should be 'naïve café 🙂', got 'naÃ¯ve": lambda ids, merges: b"".join(
        token_bytes_of(merges)[i] for i in ids).decode("latin-1"),
    "bpe_decode\\(\\[257, 260\\]\\) should be 'the theme', got 'the  theme'": lambda ids, merges: b" ".join(
        token_bytes_of(merges)[i] for i in ids).decode("utf-8", "replace"),
    "bpe_decode\\(\\[240, 159\\]\\) should be '�', got '\\\\\\\\xf0": lambda ids, merges: b"".join(
        token_bytes_of(merges)[i] for i in ids).decode("utf-8", "backslashreplace"),
    "bpe_decode\\(\\[257, 260\\]\\) should be 'the theme', got ''": lambda ids, merges: bytes(
        i for i in ids if i < 256).decode("utf-8", "replace"),  # merged ids dropped
    "should be ' the e�llo.*got 'the e�llo": lambda ids, merges: b"".join(
        token_bytes_of(merges)[i] for i in ids).decode("utf-8", "replace").strip(),
}


@pytest.mark.parametrize("decode", [REF["bpe_decode"], decode_recursively, decode_with_bytearray])
def test_bpe_decode_accepts(decode):
    assert_passes(checks.check_bpe_decode, decode)


@pytest.mark.parametrize("mistake", BPE_DECODE_BUGS)
def test_bpe_decode_names_the_mistake(mistake):
    assert_names(checks.check_bpe_decode, BPE_DECODE_BUGS[mistake], mistake)


# ---------------------------------------------------------------- 4.1 a Hugging Face tokenizer


def hf_tokenizer(train=lambda tokenizer, trainer: tokenizer.train_from_iterator([TEXT], trainer=trainer),
                 vocab_size=512, prefix_space=False, decoder=True, alphabet=True, byte_level=True, dropout=None,
                 **trainer_options):
    """A byte-level BPE tokenizer as exercise 4.1 asks, with one thing changed."""
    tokenizer = Tokenizer(models.BPE(byte_fallback=True, dropout=dropout))
    tokenizer.pre_tokenizer = (pre_tokenizers.ByteLevel(add_prefix_space=prefix_space) if byte_level
                               else pre_tokenizers.Whitespace())
    if decoder:
        tokenizer.decoder = decoders.ByteLevel()
    if alphabet:
        trainer_options["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    if train:
        train(tokenizer, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, **trainer_options))
    return tokenizer


def trained_on_a_file(tokenizer, trainer):
    with tempfile.TemporaryDirectory() as directory:
        file = Path(directory) / "shakespeare.txt"
        file.write_text(TEXT, encoding="utf-8")
        tokenizer.train([str(file)], trainer=trainer)


def with_nfc(tokenizer, normalizer=normalizers.NFC):
    tokenizer.normalizer = normalizer()  # "naïve" is already NFC: NFC changes nothing here, NFKC changes "ﬁ"
    return tokenizer


HF_VALID = {
    "reference": lambda: REF["hf_tokenizer"],
    "trained from lines": lambda: hf_tokenizer(lambda tok, trainer: tok.train_from_iterator(
        TEXT.splitlines(keepends=True), trainer=trainer)),
    "trained from a file": lambda: hf_tokenizer(trained_on_a_file),
    "with a special token and a normalizer": lambda: with_nfc(hf_tokenizer(special_tokens=["<|endoftext|>"])),
    "a Sequence of one ByteLevel pre-tokenizer": lambda: as_sequence(hf_tokenizer()),
    "with min_frequency=2": lambda: hf_tokenizer(min_frequency=2),
    "trained from lines without their newlines": lambda: hf_tokenizer(lambda tok, trainer: tok.train_from_iterator(
        TEXT.splitlines(), trainer=trainer)),  # ByteLevel splits "\n" off as a piece of its own: the same merges
    "trained from chunks of 1,000 characters": lambda: hf_tokenizer(lambda tok, trainer: tok.train_from_iterator(
        (TEXT[start:start + 1000] for start in range(0, len(TEXT), 1000)), trainer=trainer)),
}


def as_sequence(tokenizer):
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.ByteLevel(add_prefix_space=False)])
    return tokenizer

HF_BUGS = {
    "came back as .*a ByteLevel decoder": lambda: hf_tokenizer(decoder=False),
    "vocab_size=512.*has 256 entries": lambda: hf_tokenizer(vocab_size=256),
    "vocab_size=512.*entries": lambda: hf_tokenizer(vocab_size=30_000),
    "has 0 entries \\(train it": lambda: hf_tokenizer(train=None),
    "space in front.*add_prefix_space=False": lambda: hf_tokenizer(prefix_space=True),
    "never occur in the training text.*initial_alphabet": lambda: hf_tokenizer(alphabet=False),
    "the pre-tokenizer splits .*ByteLevel\\(add_prefix_space=False\\)": lambda: hf_tokenizer(byte_level=False),
    "byte_fallback=True": lambda: Tokenizer.from_str(REF["hf_tokenizer"].to_str().replace(
        '"byte_fallback":true', '"byte_fallback":false')),
    "only 1\\d\\d of the 256 merges that BPE learns from the whole of `text`": lambda: hf_tokenizer(
        lambda tok, trainer: tok.train_from_iterator([TEXT[:20_000]], trainer=trainer)),
    "dropout=0.3: BPE dropout skips merges at random": lambda: hf_tokenizer(dropout=0.3),
    "no token of the vocabulary is longer than 2 symbols; was the trainer given max_token_length": lambda: hf_tokenizer(
        max_token_length=2),
    "only 2[0-3]\\d of the 256 merges .*train it on all of the text": lambda: hf_tokenizer(
        lambda tok, trainer: tok.train_from_iterator([TEXT[:len(TEXT) // 2]], trainer=trainer)),
    "'ﬁne .*came back as 'fine .*NFKC.*drop the normalizer": lambda: with_nfc(hf_tokenizer(), normalizers.NFKC),
}


@pytest.mark.parametrize("name", HF_VALID)
def test_hf_tokenizer_accepts(name):
    assert_passes(checks.check_hf_tokenizer, HF_VALID[name]())


@pytest.mark.parametrize("mistake", HF_BUGS)
def test_hf_tokenizer_names_the_mistake(mistake):
    assert_names(checks.check_hf_tokenizer, HF_BUGS[mistake](), mistake)


def test_hf_tokenizer_check_does_not_change_the_tokenizer():
    tokenizer = hf_tokenizer()
    before = tokenizer.to_str()
    checks.check_hf_tokenizer(tokenizer)
    assert tokenizer.to_str() == before


# ---------------------------------------------------------------- 5.1 gpt2_encode


def gpt2_encoder_py_style(text):
    """The shape of OpenAI's encoder.py: a word as a tuple of symbols, merged with word.index()."""
    def bpe(token):
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda pair: merge_ranks.get(pair, float("inf")))
            if bigram not in merge_ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        return word

    ids = []
    for chunk in regex.findall(GPT2_SPLIT_PATTERN, text):
        ids.extend(gpt2_vocabulary[token] for token in bpe("".join(byte_encoder[b] for b in chunk.encode("utf-8"))))
    return ids


@functools.cache
def gpt2_id_merges():
    """Each merge as ids: (id of first, id of second) -> (rank, id of first + second)."""
    return {(gpt2_vocabulary[a], gpt2_vocabulary[b]): (rank, gpt2_vocabulary[a + b])
            for (a, b), rank in merge_ranks.items()}


def gpt2_on_ids(text):
    """Merging ids instead of strings, like coursekit.gpt2_encoder but ranked by line rather than by new id."""
    merges = gpt2_id_merges()
    ids = []
    for chunk in regex.findall(GPT2_SPLIT_PATTERN, text):
        chunk_ids = [gpt2_vocabulary[byte_encoder[b]] for b in chunk.encode("utf-8")]
        while len(chunk_ids) >= 2:
            pair = min(zip(chunk_ids, chunk_ids[1:]), key=lambda pair: merges.get(pair, (float("inf"),))[0])
            if pair not in merges:
                break
            chunk_ids = merge_pair(chunk_ids, pair, merges[pair][1])
        ids.extend(chunk_ids)
    return ids


def tokens_merged_from_the_left(tokens, best):
    merged, i = [], 0
    while i < len(tokens):
        if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) == best:
            merged.append(tokens[i] + tokens[i + 1])
            i += 2
        else:
            merged.append(tokens[i])
            i += 1
    return merged


def tokens_merged_from_the_right(tokens, best):
    """The same scan from the right end: in a run "!!!" the rightmost occurrence of ("!", "!") wins."""
    backwards = tokens_merged_from_the_left([t[::-1] for t in tokens[::-1]], (best[1][::-1], best[0][::-1]))
    return [token[::-1] for token in backwards][::-1]


def gpt2_with(symbols=lambda chunk: [byte_encoder[b] for b in chunk.encode("utf-8")],
              split=lambda text: regex.findall(GPT2_SPLIT_PATTERN, text),
              rank=lambda pair: merge_ranks.get(pair, float("inf")), choose=min, merge=tokens_merged_from_the_left):
    """A gpt2_encode built from one choice per step, so each variant below differs from a correct one in one way."""
    def gpt2_bpe(chunk):
        tokens = symbols(chunk)
        while len(tokens) >= 2:
            best = choose(zip(tokens, tokens[1:]), key=rank)
            if best not in merge_ranks:
                break
            tokens = merge(tokens, best)
        return tokens

    return lambda text: [gpt2_vocabulary[token] for chunk in split(text) for token in gpt2_bpe(chunk)]


GPT2_REFERENCE = REF["gpt2_encode"]

GPT2_BUGS = {
    "spans two chunks.*GPT2_SPLIT_PATTERN": gpt2_with(split=lambda text: [text] if text else []),
    "gpt2_encode\\('!!!'\\) should be": gpt2_with(merge=tokens_merged_from_the_right),
    "KeyError: ' '.*byte_encoder": gpt2_with(symbols=list),  # characters, never mapped: ' ' is not 'Ġ'
    "do not spell the text's bytes": gpt2_with(  # characters mapped with ord(): right for ASCII only
        symbols=lambda chunk: [byte_encoder[ord(c)] for c in chunk]),
    "KeyError: \\('.*merge_ranks.get": gpt2_with(rank=lambda pair: merge_ranks[pair]),
    "should be .*lowest rank": gpt2_with(choose=max, rank=lambda pair: merge_ranks.get(pair, -1)),
    "should be .*Split with the GPT-2 pattern first": gpt2_with(split=lambda text: regex.findall(r"\S+|\s+", text)),
    "spaces and newlines are missing.*text.split\\(\\)": gpt2_with(split=str.split),
    "gpt2_encode\\('a  b   c'\\) should be": gpt2_with(split=lambda text: regex.findall(  # no \s+(?!\S)
        r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+""", text)),
    "gpt2_encode\\(\"I'm sure they'll say DON'T\"\\) should be": gpt2_with(split=lambda text: regex.findall(
        r""" ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", text)),  # no contractions
    "gpt2_encode\\('First Citizen.*should be": lambda text: GPT2_REFERENCE(text.lower()),
    "gpt2_encode\\('line one.*the spaces and newlines are missing": lambda text: GPT2_REFERENCE(text.strip()),
    "should return ids \\(ints\\), got the token strings \\['First'": lambda text: [token for chunk in regex.findall(
        GPT2_SPLIT_PATTERN, text) for token in REF["gpt2_bpe"](chunk)],  # tokens, not ids
}


def normalised(form):
    return lambda text: GPT2_REFERENCE(unicodedata.normalize(form, text))


def dropping_the_end_of_long_chunks(text):
    return [gpt2_vocabulary[token] for chunk in regex.findall(GPT2_SPLIT_PATTERN, text)
            for token in (REF["gpt2_bpe"](chunk) if len(chunk) < 40 else REF["gpt2_bpe"](chunk)[:-1])]


def deduplicated_in_chunks(text):
    return [gpt2_vocabulary[token] for chunk in regex.findall(GPT2_SPLIT_PATTERN, text)
            for token in dict.fromkeys(REF["gpt2_bpe"](chunk))]


GPT2_BUGS.update({
    "contractions .* in lowercase only.*no case-insensitive flag": gpt2_with(split=lambda text: regex.findall(
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", text)),
    "cafe\u0301 .*your tokens spell 'café .*no normalisation": normalised("NFC"),
    "your tokens spell 'café fine... ABC'.*no normalisation": normalised("NFKC"),
    "at character 4 the text has '\\\\r\\\\nf', your tokens '\\\\nfe'": lambda text: GPT2_REFERENCE(
        text.replace("\r\n", "\n").replace("\r", "\n")),
    "the text has '\\\\xa0br', your tokens ' br'": lambda text: GPT2_REFERENCE(text.replace("\u00a0", " ")),
    "your tokens spell 'Pneumonoultramicroscopicsilicovolcanocon !": dropping_the_end_of_long_chunks,
    "every id is off by 1": lambda text: [i + 1 for i in GPT2_REFERENCE(text)],
    "the extra id 50256 is <\\|endoftext\\|>": lambda text: [50256, *GPT2_REFERENCE(text)],
    "the extra id 50256 is <\\|endoftext\\|>.*encodes the text only": lambda text: [*GPT2_REFERENCE(text), 50256],
    "a space was added in front of the text": lambda text: GPT2_REFERENCE(" " + text),
    "one flat list of ids, got a list of lists": lambda text: [[i] for i in GPT2_REFERENCE(text)],
    "gpt2_encode\\('a  b   c'\\) .*your tokens spell 'a  b  c', not the text": deduplicated_in_chunks,
})


@pytest.mark.parametrize("encode", [REF["gpt2_encode"], gpt2_encoder_py_style, gpt2_on_ids])
def test_gpt2_encode_accepts(encode):
    assert_passes(checks.check_gpt2_encode, encode)


@pytest.mark.parametrize("mistake", GPT2_BUGS)
def test_gpt2_encode_names_the_mistake(mistake):
    assert_names(checks.check_gpt2_encode, GPT2_BUGS[mistake], mistake)


# ---------------------------------------------------------------- every check: arguments and the grader's path

FUNCTION_CHECKS = ["check_encode", "check_decode", "check_pair_counts", "check_merge_pair", "check_train_bpe",
                   "check_bpe_encode", "check_bpe_decode", "check_gpt2_encode"]
REFERENCES = {
    "check_chars": chars, "check_encode": REF["encode"], "check_decode": REF["decode"],
    "check_pair_counts": REF["pair_counts"], "check_merge_pair": REF["merge_pair"],
    "check_train_bpe": REF["train_bpe"], "check_bpe_encode": REF["bpe_encode"], "check_bpe_decode": REF["bpe_decode"],
    "check_hf_tokenizer": REF["hf_tokenizer"], "check_gpt2_encode": REF["gpt2_encode"],
}
BUGGY = {
    "check_chars": CHARS_BUGS["should be sorted"], "check_encode": encode_shifted,
    "check_decode": DECODE_BUGS["chr\\(id\\)"], "check_pair_counts": pair_counts_without_last,
    "check_merge_pair": merge_without_skipping, "check_train_bpe": TRAIN_BUGS["got 1: .*apply it to the ids"],
    "check_bpe_encode": encode_newest_first, "check_bpe_decode": BPE_DECODE_BUGS["errors='ignore' drops"],
    "check_hf_tokenizer": HF_BUGS["space in front.*add_prefix_space=False"](),
    "check_gpt2_encode": GPT2_BUGS["spans two chunks.*GPT2_SPLIT_PATTERN"],
}


def test_every_check_is_covered():
    from coursekit.checks import bpe_codec, bpe_training, characters, production_tokenizers

    notebook_01_checks = {name for module in (characters, bpe_training, bpe_codec, production_tokenizers)
                          for name in vars(module) if name.startswith("check_")}
    assert set(REFERENCES) == set(BUGGY) == notebook_01_checks


@pytest.mark.parametrize("name", FUNCTION_CHECKS)
def test_a_non_function_is_refused_with_what_was_expected(name):
    check = getattr(checks, name)
    with pytest.raises(TypeError, match="should be a function"):
        check([1, 2, 3])  # e.g. the result of calling the function, instead of the function


def test_hf_check_refuses_the_training_function():
    with pytest.raises(TypeError, match="should be a trained tokenizers.Tokenizer, got function"):
        checks.check_hf_tokenizer(REF["train_hf_tokenizer"])


def test_wrong_number_of_arguments_is_refused():
    with pytest.raises(TypeError, match="takes 1 argument"):
        checks.check_bpe_encode(REF["bpe_encode"], {})


@pytest.mark.parametrize("name", REFERENCES)
def test_grader_passes_the_reference(name):
    check = getattr(checks, name)
    outcomes = check.judge(check.probe_all((REFERENCES[name],)))
    assert outcomes and all(isinstance(outcome, Outcome) and outcome.passed for outcome in outcomes), outcomes


@pytest.mark.parametrize("name", BUGGY)
def test_grader_fails_a_buggy_version(name):
    check = getattr(checks, name)
    outcomes = check.judge(check.probe_all((BUGGY[name],)))
    failed = [outcome for outcome in outcomes if not outcome.passed]
    assert failed and all(outcome.message for outcome in failed)


def test_grader_reports_a_crash_and_a_missing_result():
    def crashing(ids):
        raise RuntimeError("boom")

    results = checks.check_pair_counts.probe_all((crashing,))
    assert all(isinstance(data, ProbeError) for _, data in results)
    outcomes = checks.check_pair_counts.judge(results[1:])  # the first result never came back
    assert not outcomes[0].passed and "did not run" in outcomes[0].message
    assert not outcomes[1].passed and "RuntimeError: boom" in outcomes[1].message


@pytest.mark.parametrize("chars_value", [[["a"]], ["b", 1, "a"], [{"a"}], "abc", None])
def test_grader_judges_every_test_of_odd_chars_without_crashing(chars_value):
    outcomes = checks.check_chars.judge(checks.check_chars.probe_all((chars_value,)))
    assert len(outcomes) == 3 and not any(outcome.passed for outcome in outcomes)


# ---------------------------------------------------------------- grading: secret run seeds and points


def encode_listing_unknowns(text):
    unknown = sorted(set(text) - set(stoi))
    if unknown:
        raise KeyError(f"not in the vocabulary: {unknown}")
    return [stoi[char] for char in text]


def merge_by_looking_back(ids, pair, new_id):
    merged, may_start = [], False  # may_start: merged[-1] is an id of the input that can begin the pair
    for current in ids:
        if may_start and (merged[-1], current) == pair:
            merged[-1], may_start = new_id, False
        else:
            merged.append(current)
            may_start = True
    return merged


def encode_by_sorted_candidates(text, merges):
    ids = list(text.encode("utf-8"))
    while True:
        candidates = sorted((merges[pair], pair) for pair in set(zip(ids, ids[1:])) if pair in merges)
        if not candidates:
            return ids
        new_id, pair = candidates[0]
        ids = merge_pair(ids, pair, new_id)


def decode_by_chain(ids, merges):
    vocab = token_bytes_of(merges)
    return bytes(itertools.chain.from_iterable(vocab[i] for i in ids)).decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=None)
def cached_gpt2_bpe(chunk):
    return tuple(REF["gpt2_bpe"](chunk))


def gpt2_with_a_cache(text):
    return [gpt2_vocabulary[token] for match in regex.finditer(GPT2_SPLIT_PATTERN, text)
            for token in cached_gpt2_bpe(match.group())]


# As the grader runs a check: probes under a run seed, then judges under the same seed. Seed 0 is the notebook's.

SECRET_SEEDS = range(1, 6)
VALID = {
    "check_chars": [*CHARS_VALID.values(), list("".join(sorted(set(TEXT))))],
    "check_encode": [REF["encode"], encode_by_index, encode_reraising, encode_listing_unknowns],
    "check_decode": [REF["decode"], decode_by_map, decode_by_concatenation,
                     lambda ids: "".join(itos[i] for i in torch.as_tensor(ids).tolist())],
    "check_pair_counts": [REF["pair_counts"], pair_counts_by_counter, pair_counts_by_index,
                          pair_counts_by_comprehension],
    "check_merge_pair": [REF["merge_pair"], merge_with_skip_flag, merge_a_copy_in_place, merge_by_looking_back],
    "check_train_bpe": list(TRAIN_VALID.values()),
    "check_bpe_encode": [REF["bpe_encode"], encode_in_merge_order, encode_by_position, encode_by_sorted_candidates],
    "check_bpe_decode": [REF["bpe_decode"], decode_recursively, decode_with_bytearray, decode_by_chain],
    "check_hf_tokenizer": [make() for make in HF_VALID.values()],
    "check_gpt2_encode": [REF["gpt2_encode"], gpt2_encoder_py_style, gpt2_on_ids, gpt2_with_a_cache],
}
# {check: (its buggy versions by the message they get, the ones that only get an edge case wrong)}
MISTAKES = {
    "check_chars": (CHARS_BUGS, []), "check_encode": (ENCODE_BUGS, ENCODE_EDGE), "check_decode": (DECODE_BUGS, DECODE_EDGE),
    "check_pair_counts": (PAIR_COUNTS_BUGS, []), "check_merge_pair": (MERGE_BUGS, []),
    "check_train_bpe": (TRAIN_BUGS, TRAIN_EDGE), "check_bpe_encode": (BPE_ENCODE_BUGS, BPE_ENCODE_EDGE),
    "check_bpe_decode": (BPE_DECODE_BUGS, []), "check_gpt2_encode": (GPT2_BUGS, ["gpt2_encode\\('!!!'\\) should be"]),
    "check_hf_tokenizer": ({mistake: make() for mistake, make in HF_BUGS.items()}, []),
}


def graded(check, student, seed):
    return check.judge(check.probe_all((student,), seed), seed)


def points_share(check, student, seed):
    return check.fraction(graded(check, student, seed))


def test_every_check_has_three_valid_alternatives_and_many_mistakes():
    assert set(VALID) == set(MISTAKES) == set(REFERENCES)
    assert all(len(valid) >= 4 for valid in VALID.values())  # the reference and three others
    assert all(len(bugs) >= 8 for bugs, _ in MISTAKES.values()), {name: len(b) for name, (b, _) in MISTAKES.items()}


@pytest.mark.parametrize("name", VALID)
def test_valid_versions_pass_under_secret_seeds(name):
    check = getattr(checks, name)
    for student in VALID[name]:
        for seed in SECRET_SEEDS:
            assert all(outcome.passed for outcome in graded(check, student, seed)), (seed, graded(check, student, seed))


@pytest.mark.parametrize("name", MISTAKES)
def test_every_mistake_fails_under_secret_seeds_with_plain_messages(name):
    check, (bugs, _) = getattr(checks, name), MISTAKES[name]
    for mistake, student in bugs.items():
        for seed in (1, 2):
            failed = [outcome for outcome in graded(check, student, seed) if not outcome.passed]
            assert failed, (mistake, seed)
            assert not [o.message for o in failed if "np.float" in o.message], mistake


@pytest.mark.parametrize("name", MISTAKES)
def test_one_typical_mistake_loses_the_exercise(name):
    """A typical bug keeps at most 30 % of the exercise's points; one that only gets an edge case wrong (an
    unknown character, an empty text) keeps at least 70 %: edge cases are worth little."""
    check, (bugs, edge) = getattr(checks, name), MISTAKES[name]
    for mistake, student in bugs.items():
        for seed in (0, 1):
            share = points_share(check, student, seed)
            assert (share >= 0.7 if mistake in edge else share <= 0.3), (mistake, seed, round(share, 2))


def replaying(check, reference):
    """A forger's version: the reference's outputs for the inputs the public probes use, and nothing else."""
    def key(args):
        return repr([arg.tolist() if isinstance(arg, torch.Tensor) else arg for arg in args])

    answers = {}

    def recording(*args):
        try:
            answers[key(args)] = reference(*args)
        except Exception as error:  # the reference's error for an unknown character is replayed too
            answers[key(args)] = error
            raise
        return answers[key(args)]

    def replay(*args):
        answer = answers[key(args)]  # KeyError for any input it never saw
        if isinstance(answer, Exception):
            raise answer
        return copy.deepcopy(answer)

    check.probe_all((recording,), 0)
    return replay


@pytest.mark.parametrize("name", FUNCTION_CHECKS)
def test_replaying_the_public_answers_passes_in_the_notebook_and_earns_little_in_grading(name):
    check = getattr(checks, name)
    forged = replaying(check, REFERENCES[name])
    assert points_share(check, forged, 0) == 1.0
    for seed in (1, 2, 3):
        assert points_share(check, forged, seed) <= 0.3, seed


MESSAGES_UNDER_SECRET_SEEDS = [
    ("check_train_bpe", TRAIN_BUGS["one of the least frequent pairs.*not min"], "one of the least frequent pairs"),
    ("check_train_bpe", TRAIN_BUGS["the pair is stored reversed"], "the pair is stored reversed"),
    ("check_bpe_encode", encode_most_frequent_first, "you merged the most frequent pair first"),
    ("check_bpe_encode", encode_least_frequent_first, "you merged the least frequent pair first"),
    ("check_bpe_decode", BPE_DECODE_BUGS["join all the bytes first and decode once"], "join all the bytes first"),
    ("check_merge_pair", merge_without_skipping, "skip both ids of the pair"),
    ("check_encode", encode_shifted, "shifted by one"),
    ("check_decode", DECODE_BUGS["off by one position"], "off by one position"),
]


@pytest.mark.parametrize("name, student, message", MESSAGES_UNDER_SECRET_SEEDS)
def test_the_mistake_is_named_on_secret_inputs_too(name, student, message):
    check = getattr(checks, name)
    core_test = max(check.tests, key=lambda test: test.weight).name  # the test that carries the exercise
    for seed in (1, 2, 3):
        core = next(outcome for outcome in graded(check, student, seed) if outcome.test == core_test)
        assert not core.passed and message in core.message, (seed, core.message)


def test_secret_inputs_differ_from_the_public_ones_and_between_seeds():
    from coursekit.checks.core import seeded

    def inputs(seed):
        with seeded(seed, "encode", "encode of a passage with spaces, newlines and punctuation"):
            return characters.passage()

    from coursekit.checks import characters

    assert inputs(0) == characters.PASSAGE and len({inputs(seed) for seed in range(6)}) == 6
