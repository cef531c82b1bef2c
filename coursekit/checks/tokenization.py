"""Checks for notebook 01's byte pair encoding exercises: pair counts, merges, training, encode and decode."""

from __future__ import annotations

from coursekit.bpe import BPETokenizer, apply_merges, merge_pair, pair_counts, train_bpe_naive
from coursekit.checks.core import Check, Test, describe, type_and_value


def _counts_as_rows(counts) -> dict:
    """Pair counts as plain rows [[first, second, count], ...], or a description of what came back instead."""
    if not isinstance(counts, dict):
        return {"error": f"pair_counts should return a dict {{(a, b): count}}, got {describe(counts)}"}
    rows = []
    for key, value in counts.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            return {"error": f"keys should be pairs (a, b) as tuples, got the key {key!r}"}
        rows.append([int(key[0]), int(key[1]), int(value)])
    return {"rows": rows}


def _counts_mistake(got, ids: list[int]) -> str | None:
    if "error" in got:
        return got["error"]
    counts = {(a, b): count for a, b, count in got["rows"]}
    expected = pair_counts(ids)
    if counts == expected:
        return None
    without_overlaps = {pair: len(ids) - len(merge_pair(ids, pair, -1)) for pair in expected}
    if counts == without_overlaps:
        return (f"overlapping pairs count too: {ids} should give {expected}, got {counts} "
                f"(after counting a pair, move on by one id, not two)")
    all_ones = counts.keys() == expected.keys() and set(counts.values()) == {1}
    if counts == pair_counts(ids[:-1]):
        either = " (or each count was set to 1 instead of increased)" if all_ones else ""
        return f"the last pair is missing{either}: the pairs of {ids} are {list(zip(ids, ids[1:]))} (zip(ids, ids[1:]))"
    every_other = {}
    for a, b in list(zip(ids, ids[1:]))[::2]:
        every_other[a, b] = every_other.get((a, b), 0) + 1
    if counts == every_other:
        return (f"you counted every other pair (a step of 2): pairs overlap, so {ids} has the pairs "
                f"{list(zip(ids, ids[1:]))} (zip(ids, ids[1:]))")
    if all_ones:
        return (f"every count is 1: add one to the pair's count each time you see it "
                f"(counts.get(pair, 0) + 1); pair_counts({ids}) should be {expected}")
    return f"pair_counts({ids}) should be {expected}, got {counts}"


PAIR_SAMPLES = [[1, 2, 3, 1, 2], [7, 7, 7], [5], [], [104, 101, 108, 108, 111, 32, 104, 101, 108, 108, 111]]

check_pair_counts = Check(
    exercise="pair_counts",
    expects=["a function pair_counts(ids) -> dict[tuple[int, int], int]"],
    tests=[Test(f"pair_counts({ids})", lambda function, ids=ids: _counts_as_rows(function(list(ids))),
                lambda got, ids=ids: _counts_mistake(got, ids)) for ids in PAIR_SAMPLES],
)

MERGE_SAMPLES = [([1, 2, 3, 1, 2], (1, 2), 256), ([7, 7, 7], (7, 7), 256), ([5, 1, 2], (1, 2), 300),
                 ([4, 5, 6], (1, 2), 256)]


def _merge_probe(ids, pair, new_id):
    def probe(function):
        original = list(ids)
        out = function(original, pair, new_id)
        return {"result": type_and_value(out), "input_changed": original != ids}
    return probe


def _merge_mistake(got, ids, pair, new_id) -> str | None:
    expected = merge_pair(ids, pair, new_id)
    result = got["result"]
    if result["type"] != "list":
        return f"merge_pair should return a new list, got a {result['type']}"
    if got["input_changed"]:
        return "merge_pair changed the list it was given; build and return a new list instead"
    if result["value"] == expected:
        return None
    if result["value"] == expected[:-1]:
        return f"the last id is dropped: merge_pair({ids}, {pair}, {new_id}) should be {expected}"
    for mistake, wrong in _wrong_merges(ids, pair, new_id).items():
        if result["value"] == wrong:
            return f"{mistake}: merge_pair({ids}, {pair}, {new_id}) should be {expected}, got {wrong}"
    return f"merge_pair({ids}, {pair}, {new_id}) should be {expected}, got {result['value']}"


def _wrong_merges(ids: list[int], pair: tuple[int, int], new_id: int) -> dict[str, list[int]]:
    """What three common mistakes give, to name them: [7, 7, 7] -> [7, 256], [256, 256, 7], ..."""
    first, second = pair
    starts = [i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == pair]
    return {
        "scan from the left: the leftmost occurrence wins when occurrences overlap":
            merge_pair(ids[::-1], (second, first), new_id)[::-1],
        "after a match, skip both ids of the pair (i += 2): the second id is now part of new_id":
            [new_id if i in starts else ids[i] for i in range(len(ids))],
        "only the first occurrence was replaced: replace every occurrence":
            ids[:starts[0]] + [new_id] + ids[starts[0] + 2:] if starts else list(ids),
    }


check_merge_pair = Check(
    exercise="merge_pair",
    expects=["a function merge_pair(ids, pair, new_id) -> list[int]"],
    tests=[Test(f"merge_pair({ids}, {pair}, {new_id})", _merge_probe(ids, pair, new_id),
                lambda got, case=(ids, pair, new_id): _merge_mistake(got, *case))
           for ids, pair, new_id in MERGE_SAMPLES],
)

# Mostly ASCII, plus "héhé" often enough that its bytes are merged early: a trainer that works on characters
# (ord) instead of UTF-8 bytes learns (104, 233) = "hé", which is no pair of the bytes.
TRAIN_TEXT = ("the cat sat on the mat; the dog sat on the log. " * 3) + "héhé héhé héhé héhé 🙂🙂 naïve"
TRAIN_MERGES = 20


def _merges_as_rows(merges) -> dict:
    if not isinstance(merges, dict):
        return {"error": f"train_bpe should return a dict {{(a, b): new_id}}, got {describe(merges)}"}
    rows = []
    for key, value in merges.items():
        if isinstance(value, tuple) and not isinstance(key, tuple):
            return {"error": f"keys and values are swapped ({key!r}: {value!r}): merges maps a pair to its new id, "
                             f"{{(a, b): new_id}}"}
        if not (isinstance(key, tuple) and len(key) == 2):
            return {"error": f"keys should be pairs (a, b) as tuples, got the key {key!r}"}
        rows.append([int(key[0]), int(key[1]), int(value)])
    return {"rows": rows}


def _train_probe(function):
    return _merges_as_rows(function(TRAIN_TEXT, 256 + TRAIN_MERGES))


def _train_shape_mistake(got) -> str | None:
    if "error" in got:
        return got["error"]
    ids = [row[2] for row in got["rows"]]
    if len(ids) < TRAIN_MERGES:
        return (f"train_bpe(text, vocab_size=256 + {TRAIN_MERGES}) should learn {TRAIN_MERGES} merges, got "
                f"{len(ids)}: new ids run from 256 to vocab_size - 1, and after each merge apply it to the ids "
                f"(ids = merge_pair(...)), else the same pair wins again and overwrites its entry")
    if len(ids) != TRAIN_MERGES:
        return (f"train_bpe(text, vocab_size=256 + {TRAIN_MERGES}) should learn {TRAIN_MERGES} merges, got {len(ids)}:"
                f" the vocabulary is the 256 bytes plus one id per merge, so new ids run from 256 to vocab_size - 1")
    if ids != list(range(256, 256 + TRAIN_MERGES)):
        return f"new ids should be 256, 257, ... in the order the merges are learned; got {ids[:5]}..."
    return None


def _replay_mistake(ids: list[int], rows: list[list[int]]) -> str | None:
    """Replay merges on ids: None when each is a most frequent pair at its step (any tie-break), else why not."""
    known = set(ids) | set(range(256))
    for step, (first, second, new_id) in enumerate(rows):
        if first not in known or second not in known:
            return (f"merge {step} is {(first, second)}, but ids are bytes 0-255 or earlier merges: train on "
                    f"UTF-8 bytes, ids = list(text.encode('utf-8')), not on characters")
        counts = pair_counts(ids)
        count = counts.get((first, second), 0)
        if count < max(counts.values(), default=0):
            top = max(counts, key=counts.get)
            return (f"merge {step} was {(first, second)}, which occurs {count} times at that point, but {top} occurs "
                    f"{counts[top]} times: after each merge, apply it to the ids and count the pairs again")
        ids = merge_pair(ids, (first, second), new_id)
        known.add(new_id)
    return None


def _train_greedy_mistake(got) -> str | None:
    shape = _train_shape_mistake(got)
    if shape:
        return f"fix this first: {shape}"
    mistake = _replay_mistake(list(TRAIN_TEXT.encode("utf-8")), got["rows"])
    if mistake and _replay_mistake([ord(char) for char in TRAIN_TEXT], got["rows"]) is None:
        return ("these merges were learned on characters (code points, ord), not on bytes: start from "
                "ids = list(text.encode('utf-8')), where 'é' is the two bytes [195, 169], not ord('é') = 233")
    return mistake


check_train_bpe = Check(
    exercise="train_bpe",
    expects=["a function train_bpe(text, vocab_size) -> dict[tuple[int, int], int]"],
    tests=[
        Test("returns vocab_size - 256 merges with ids 256, 257, ...", _train_probe, _train_shape_mistake),
        Test("every merge is a most frequent pair of the bytes at its step", _train_probe, _train_greedy_mistake),
    ],
)

# The merges the encode/decode checks hand to student code: learned by the reference trainer on a fixed text.
FIXED_MERGES = train_bpe_naive("the theme of the thesis: 'these are the themes' " * 4 + "héllo", vocab_size=276)
# "he has": the merge (104, 101) "he" must win over the later (32, 104) " h", whatever the order of the pairs.
CODEC_SAMPLES = ["the theme", "hello there! he has his hat", "naïve café 🙂", "", "zzz"]
_FIXED_VOCAB = BPETokenizer(FIXED_MERGES).vocab  # id -> its bytes


def _encode_mistake(got, text: str) -> str | None:
    expected = apply_merges(text.encode("utf-8"), FIXED_MERGES)
    if got["type"] != "list":
        return f"bpe_encode should return a list of ints, got a {got['type']}"
    if got["value"] == expected:
        return None
    if got["value"] == list(text.encode("utf-8")):
        return f"bpe_encode({text!r}) returned the raw bytes: no merge was applied"
    if got["value"] == apply_merges([ord(char) for char in text], FIXED_MERGES):
        return (f"bpe_encode({text!r}) should be {expected}, got {got['value']}: start from the UTF-8 bytes, "
                f"list(text.encode('utf-8')), not the characters' code points (ord)")
    return (f"bpe_encode({text!r}) should be {expected}, got {got['value']}: apply the merges in the order they "
            f"were learned: repeatedly merge the adjacent pair with the lowest new id (merges[pair]), until no "
            f"adjacent pair is in merges (a merge can make a new pair that is in merges)")


check_bpe_encode = Check(
    exercise="bpe_encode",
    expects=["a function bpe_encode(text, merges) -> list[int]"],
    tests=[Test(f"bpe_encode({text!r})", lambda encode, text=text: type_and_value(encode(text, dict(FIXED_MERGES))),
                lambda got, text=text: _encode_mistake(got, text)) for text in CODEC_SAMPLES],
)


def _decode_bytes_mistake(got, ids: list[int], expected: str) -> str | None:
    if got["type"] == "bytes" or got["type"] == "list":
        return "bpe_decode should return a str: join the bytes, then .decode('utf-8', errors='replace')"
    if got["type"] != "str":
        return f"bpe_decode should return a str, got a {got['type']}"
    if got["value"] != expected:
        token_bytes = [_FIXED_VOCAB.get(i, b"") for i in ids]
        if got["value"] == "".join(token.decode("utf-8", errors="replace") for token in token_bytes):
            return (f"bpe_decode({ids}) should be {expected!r}, got {got['value']!r}: a character's bytes can be "
                    f"split over several tokens, so join all the bytes first and decode once")
        if got["value"] == b"".join(token_bytes).decode("utf-8", errors="ignore"):
            return (f"bpe_decode({ids}) should be {expected!r}, got {got['value']!r}: errors='ignore' drops "
                    f"invalid bytes silently; use errors='replace' so they show as '\\ufffd'")
        return f"bpe_decode({ids}) should be {expected!r}, got {got['value']!r}"
    return None


def _decode_cases() -> list[tuple[list[int], str]]:
    cases = [(apply_merges(text.encode("utf-8"), FIXED_MERGES), text) for text in CODEC_SAMPLES]
    half_emoji = list("🙂".encode("utf-8"))[:2]
    return cases + [(half_emoji, "\ufffd")]  # invalid UTF-8 must not crash: errors="replace"


def _decode_probe(ids):
    def probe(decode):
        try:
            return type_and_value(decode(list(ids), dict(FIXED_MERGES)))
        except UnicodeDecodeError as error:
            return {"type": "UnicodeDecodeError", "value": str(error)}
    return probe


def _decode_judge(ids, text):
    def judge(got):
        if got["type"] == "UnicodeDecodeError":
            return (f"bpe_decode({ids}) crashed with UnicodeDecodeError: these bytes are not valid UTF-8 on their "
                    f"own; decode with errors='replace' so they become '\\ufffd'")
        return _decode_bytes_mistake(got, ids, text)
    return judge


check_bpe_decode = Check(
    exercise="bpe_decode",
    expects=["a function bpe_decode(ids, merges) -> str"],
    tests=[Test(f"bpe_decode of {text!r}", _decode_probe(ids), _decode_judge(ids, text))
           for ids, text in _decode_cases()],
)
