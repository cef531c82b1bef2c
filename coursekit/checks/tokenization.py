"""Checks for notebook 01's byte pair encoding exercises: pair counts, merges, training, encode and decode."""

from __future__ import annotations

from coursekit.checks.core import Check, Test, describe, is_public, probe_rng, type_and_value


def _bpe():
    """The reference (coursekit.bpe), for judges only: it is the answer, so it is never in a sandbox."""
    from coursekit import bpe

    return bpe


def _ids_drawn(rng, low: int = 30, high: int = 60) -> list[int]:
    """Secret ids with many repeats and overlaps: a few small byte values, some two-digit ones, a merged id."""
    alphabet = [1, 2, 7, 11, 21, 256]
    return [int(i) for i in rng.choice(alphabet, size=int(rng.integers(low, high)), p=None)]


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
    pair_counts, merge_pair = _bpe().pair_counts, _bpe().merge_pair
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


# (ids, weight): the counting itself carries the exercise; a single id and no ids are edge cases.
PAIR_SAMPLES = [([1, 2, 3, 1, 2], 2.0), ([7, 7, 7], 2.0), ([5], 0.1), ([], 0.1),
                ([104, 101, 108, 108, 111, 32, 104, 101, 108, 108, 111], 1.0)]
PUBLIC_PAIR_IDS = [11, 2, 1, 2, 1, 2, 2, 2, 21, 12, 1, 2]


def _pair_ids() -> list[int]:
    """The ids of the "many pairs" test: public in a notebook, drawn from the test's rng when grading."""
    return list(PUBLIC_PAIR_IDS) if is_public() else _ids_drawn(probe_rng())


check_pair_counts = Check(
    exercise="pair_counts",
    expects=["a function pair_counts(ids) -> dict[tuple[int, int], int]"],
    tests=[
        *(Test(f"pair_counts({ids})", lambda function, ids=ids: _counts_as_rows(function(list(ids))),
               lambda got, ids=ids: _counts_mistake(got, ids), weight=weight) for ids, weight in PAIR_SAMPLES),
        Test("pair_counts of many ids with repeats and overlaps", lambda function: _counts_as_rows(function(
            _pair_ids())), lambda got: _counts_mistake(got, _pair_ids()), weight=4.0),
    ],
)

# (ids, pair, new_id, weight). [11, 2, ...]: merging "1 2" in a string of the ids also hits "11 2" and "2 12".
MERGE_SAMPLES = [([1, 2, 3, 1, 2], (1, 2), 256, 2.0), ([7, 7, 7], (7, 7), 256, 1.0), ([5, 1, 2], (1, 2), 300, 1.0),
                 ([4, 5, 6], (1, 2), 256, 0.1), ([11, 2, 1, 2, 12, 1, 2, 1], (1, 2), 256, 1.0)]


def _merge_case() -> tuple[list[int], tuple[int, int], int]:
    """The "many ids" merge: public in a notebook, drawn from the test's rng when grading."""
    if is_public():
        return [2, 1, 2, 2, 1, 2, 1, 1, 2, 21, 12, 7], (1, 2), 257
    rng = probe_rng()
    ids = _ids_drawn(rng)
    pair = (ids[int(rng.integers(len(ids) - 1))], ids[-1]) if rng.random() < 0.3 else tuple(
        int(i) for i in rng.choice([1, 2, 7, 11], size=2))
    return ids, pair, int(rng.integers(256, 400))


def _merge_probe(case):
    def probe(function):
        ids, pair, new_id = case()
        original = list(ids)
        out = function(original, pair, new_id)
        return {"result": type_and_value(out), "input_changed": original != ids}
    return probe


def _merge_mistake(got, ids, pair, new_id) -> str | None:
    expected = _bpe().merge_pair(ids, pair, new_id)
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
    merge_pair = _bpe().merge_pair
    starts = [i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == pair]
    as_text = " ".join(map(str, ids)).replace(f"{first} {second}", str(new_id)).split()
    return {
        "the ids were merged as text (str.replace): replacing '1 2' also changes '11 2' and '1 21'; compare the ids "
        "themselves, (ids[i], ids[i + 1]) == pair": [int(i) for i in as_text],
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
    tests=[
        *(Test(f"merge_pair({ids}, {pair}, {new_id})", _merge_probe(lambda case=(ids, pair, new_id): case),
               lambda got, case=(ids, pair, new_id): _merge_mistake(got, *case), weight=weight)
          for ids, pair, new_id, weight in MERGE_SAMPLES),
        Test("merge_pair of many ids with repeats and overlaps", _merge_probe(_merge_case),
             lambda got: _merge_mistake(got, *_merge_case()), weight=4.0),
    ],
)

# Mostly ASCII, plus "héhé" often enough that its bytes are merged early: a trainer that works on characters
# (ord) instead of UTF-8 bytes learns (104, 233) = "hé", which is no pair of the bytes.
TRAIN_TEXT = ("the cat sat on the mat; the dog sat on the log. " * 3) + "héhé héhé héhé héhé 🙂🙂 naïve"
TRAIN_MERGES = 20
TRAIN_WORDS = ["the", "cat", "sat", "on", "mat", "dog", "log", "héhé", "naïve", "🙂", "thé", "hat", "at", "tea"]


def _train_case() -> tuple[str, int]:
    """(text, number of merges): public in a notebook, a text of random words and another size when grading."""
    if is_public():
        return TRAIN_TEXT, TRAIN_MERGES
    rng = probe_rng()
    words = rng.choice(TRAIN_WORDS, size=int(rng.integers(30, 60)))
    return " ".join(str(word) for word in words) + " héhé héhé", int(rng.integers(12, 24))


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
    text, merges = _train_case()
    return _merges_as_rows(function(text, 256 + merges))


def _train_shape_mistake(got) -> str | None:
    if "error" in got:
        return got["error"]
    wanted = _train_case()[1]
    ids = [row[2] for row in got["rows"]]
    if len(ids) < wanted:
        return (f"train_bpe(text, vocab_size=256 + {wanted}) should learn {wanted} merges, got "
                f"{len(ids)}: new ids run from 256 to vocab_size - 1, and after each merge apply it to the ids "
                f"(ids = merge_pair(...)), else the same pair wins again and overwrites its entry")
    if len(ids) != wanted:
        return (f"train_bpe(text, vocab_size=256 + {wanted}) should learn {wanted} merges, got {len(ids)}:"
                f" the vocabulary is the 256 bytes plus one id per merge, so new ids run from 256 to vocab_size - 1")
    if ids != list(range(256, 256 + wanted)):
        return f"new ids should be 256, 257, ... in the order the merges are learned; got {ids[:5]}..."
    return None


def _replay_mistake(ids: list[int], rows: list[list[int]]) -> str | None:
    """Replay merges on ids: None when each is a most frequent pair at its step (any tie-break), else why not."""
    bpe = _bpe()
    known = set(ids) | set(range(256))
    for step, (first, second, new_id) in enumerate(rows):
        if first not in known or second not in known:
            return (f"merge {step} is {(first, second)}, but ids are bytes 0-255 or earlier merges: train on "
                    f"UTF-8 bytes, ids = list(text.encode('utf-8')), not on characters")
        counts = bpe.pair_counts(ids)
        count, most = counts.get((first, second), 0), max(counts.values(), default=0)
        if count < most:
            top = max(counts, key=counts.get)
            said = f"merge {step} was {(first, second)}, which occurs {count} times at that point, but {top} occurs {most}"
            if counts.get((second, first), 0) == most:
                return (f"{said}: the pair is stored reversed; keep (a, b) in the order the two ids appear, the "
                        f"order zip(ids, ids[1:]) gives")
            if count and count == min(counts.values()):
                return (f"{said}: that is one of the least frequent pairs; merge the most frequent one, "
                        f"max(counts, key=counts.get), not min")
            if not count:
                return (f"{said}: {(first, second)} does not occur in the ids at that step: after each merge, "
                        f"apply it to the ids and count the pairs again")
            return f"{said} times: after each merge, apply it to the ids and count the pairs again"
        ids = bpe.merge_pair(ids, (first, second), new_id)
        known.add(new_id)
    return None


def _train_greedy_mistake(got) -> str | None:
    shape = _train_shape_mistake(got)
    if shape:
        return f"fix this first: {shape}"
    text = _train_case()[0]
    mistake = _replay_mistake(list(text.encode("utf-8")), got["rows"])
    if mistake and _replay_mistake([ord(char) for char in text], got["rows"]) is None:
        return ("these merges were learned on characters (code points, ord), not on bytes: start from "
                "ids = list(text.encode('utf-8')), where 'é' is the two bytes [195, 169], not ord('é') = 233")
    return mistake


check_train_bpe = Check(
    exercise="train_bpe",
    expects=["a function train_bpe(text, vocab_size) -> dict[tuple[int, int], int]"],
    tests=[
        Test("returns vocab_size - 256 merges with ids 256, 257, ...", _train_probe, _train_shape_mistake, 1.0),
        Test("every merge is a most frequent pair of the bytes at its step", _train_probe, _train_greedy_mistake,
             4.0),
    ],
)

# The merges the encode/decode checks hand to student code: learned once by the reference trainer on
# "the theme of the thesis: 'these are the themes' " * 4 + "héllo" (vocab_size=276), kept as data so that no
# trainer is loaded where student code runs.
FIXED_MERGES = {(104, 101): 256, (116, 256): 257, (32, 257): 258, (109, 101): 259, (258, 259): 260, (32, 39): 261,
                (32, 97): 262, (32, 111): 263, (105, 115): 264, (114, 101): 265, (115, 101): 266, (115, 264): 267,
                (257, 266): 268, (258, 267): 269, (260, 115): 270, (262, 265): 271, (263, 102): 272, (32, 104): 273,
                (108, 108): 274, (169, 274): 275}
# (text, weight). "he has": the merge (104, 101) "he" must win over the later (32, 104) " h", whatever the order
# of the pairs; in "hi, he has his hat" " h" is the most frequent pair but "he" was learned first.
CODEC_SAMPLES = [("the theme", 1.0), ("hello there! he has his hat", 2.0), ("naïve café 🙂", 0.1), ("", 0.1),
                 ("zzz", 0.1), ("oh hi, he has his hat", 2.0), ("he", 0.25)]
CODEC_WORDS = ["the", "theme", "these", "thesis", "he", "has", "his", "hat", "héllo", "café", "🙂", "are", "of", "s"]


def _codec_text() -> str:
    """The "many words" text for bpe_encode and bpe_decode: public in a notebook, random words when grading."""
    if is_public():
        return "the themes of these theses: he has 'héllo' there"
    rng = probe_rng()
    return " ".join(str(word) for word in rng.choice(CODEC_WORDS, size=int(rng.integers(6, 16))))


def _by_count(ids: list[int], merges: dict, pick) -> list[int]:
    """What a wrong bpe_encode gives: merge by how often a pair occurs (pick = max or min), not by learning order."""
    bpe = _bpe()
    while True:
        counts = {pair: n for pair, n in bpe.pair_counts(ids).items() if pair in merges}
        if not counts:
            return ids
        pair = pick(counts, key=lambda p: (counts[p], -merges[p]))
        ids = bpe.merge_pair(ids, pair, merges[pair])


def _encode_mistake(got, text: str) -> str | None:
    bpe = _bpe()
    data = text.encode("utf-8")
    expected = bpe.apply_merges(data, FIXED_MERGES)
    if got["type"] != "list":
        return f"bpe_encode should return a list of ints, got a {got['type']}"
    ids = got["value"]
    if ids == expected:
        return None
    said = f"bpe_encode({text!r}) should be {expected}, got {ids}"
    if ids == list(data) and expected != list(data):
        return f"bpe_encode({text!r}) returned the raw bytes: no merge was applied"
    if ids == bpe.apply_merges([ord(char) for char in text], FIXED_MERGES):
        return (f"{said}: start from the UTF-8 bytes, list(text.encode('utf-8')), not the characters' code "
                f"points (ord)")
    if ids in (_by_count(list(data), FIXED_MERGES, max), _by_count(list(data), FIXED_MERGES, min)):
        return (f"{said}: you merged pairs by how often they occur; bpe_encode must apply the merges in the order "
                f"they were learned: always the adjacent pair with the lowest new id, min(pairs, key=merges[pair])")
    if ids == _by_rank(list(data), FIXED_MERGES, max):
        return (f"{said}: you merged the pair with the highest new id first; the lowest id was learned first: "
                f"min(..., key=lambda pair: merges.get(pair, float('inf')))")
    if isinstance(ids, list) and len(ids) > len(expected) and _by_rank(list(data), FIXED_MERGES, min, 1) == ids:
        return f"{said}: only one merge was applied; keep merging (a while loop) until no adjacent pair is in merges"
    return (f"{said}: apply the merges in the order they were learned: repeatedly merge the adjacent pair with the "
            f"lowest new id (merges[pair]), until no adjacent pair is in merges (a merge can make a new pair that "
            f"is in merges)")


def _by_rank(ids: list[int], merges: dict, pick, limit: int | None = None) -> list[int]:
    """Merge by new id (pick = min is right, max is a mistake), at most `limit` times."""
    merge_pair, done = _bpe().merge_pair, 0
    while limit is None or done < limit:
        present = [pair for pair in zip(ids, ids[1:]) if pair in merges]
        if not present:
            break
        pair = pick(present, key=merges.get)
        ids, done = merge_pair(ids, pair, merges[pair]), done + 1
    return ids


def _encode_probe(text):
    def probe(encode):
        return type_and_value(encode(text() if callable(text) else text, dict(FIXED_MERGES)))
    return probe


check_bpe_encode = Check(
    exercise="bpe_encode",
    expects=["a function bpe_encode(text, merges) -> list[int]"],
    tests=[
        *(Test(f"bpe_encode({text!r})", _encode_probe(text), lambda got, text=text: _encode_mistake(got, text),
               weight) for text, weight in CODEC_SAMPLES),
        Test("bpe_encode of many words", _encode_probe(_codec_text), lambda got: _encode_mistake(got, _codec_text()),
             6.0),
    ],
)


def _fixed_vocab() -> dict[int, bytes]:
    return _bpe().BPETokenizer(FIXED_MERGES).vocab  # id -> its bytes


def _decode_bytes_mistake(got, ids: list[int], expected: str) -> str | None:
    if got["type"] == "bytes" or got["type"] == "list":
        return "bpe_decode should return a str: join the bytes, then .decode('utf-8', errors='replace')"
    if got["type"] != "str":
        return f"bpe_decode should return a str, got a {got['type']}"
    if got["value"] != expected:
        vocab = _fixed_vocab()
        token_bytes = [vocab.get(i, b"") for i in ids]
        if got["value"] == "".join(token.decode("utf-8", errors="replace") for token in token_bytes):
            return (f"bpe_decode({ids}) should be {expected!r}, got {got['value']!r}: a character's bytes can be "
                    f"split over several tokens, so join all the bytes first and decode once")
        if got["value"] == b"".join(token_bytes).decode("utf-8", errors="ignore"):
            return (f"bpe_decode({ids}) should be {expected!r}, got {got['value']!r}: errors='ignore' drops "
                    f"invalid bytes silently; use errors='replace' so they show as '\\ufffd'")
        return f"bpe_decode({ids}) should be {expected!r}, got {got['value']!r}"
    return None


# The ids of CODEC_SAMPLES under FIXED_MERGES, as data (the probe must not encode: that is an exercise).
DECODE_SAMPLES = [([257, 260], "the theme", 1.0),
                  ([256, 274, 111, 258, 265, 33, 32, 256, 273, 97, 115, 273, 264, 273, 97, 116],
                   "hello there! he has his hat", 1.0),
                  ([110, 97, 195, 175, 118, 101, 32, 99, 97, 102, 195, 169, 32, 240, 159, 153, 130],
                   "naïve café 🙂", 1.0),
                  ([], "", 0.1), ([240, 159], "\ufffd", 0.5)]  # half an emoji: invalid UTF-8 must not crash


def _decode_ids() -> list[int]:
    """The "many ids" case: public in a notebook, random ids of the vocabulary (split characters too) when grading."""
    if is_public():
        return [258, 32, 101, 275, 111, 32, 99, 97, 102, 195, 169, 272, 195, 159, 153, 130, 270, 255, 0]
    rng = probe_rng()
    return [int(i) for i in rng.integers(0, 256 + len(FIXED_MERGES), size=int(rng.integers(5, 25)))]


def _decode_probe(ids):
    def probe(decode):
        try:
            return type_and_value(decode(ids() if callable(ids) else list(ids), dict(FIXED_MERGES)))
        except UnicodeDecodeError as error:
            return {"type": "UnicodeDecodeError", "value": str(error)}
    return probe


def _decode_judge(ids, text=None):
    def judge(got):
        wanted = ids() if callable(ids) else ids
        expected = text if text is not None else b"".join(_fixed_vocab()[i] for i in wanted).decode(
            "utf-8", errors="replace")
        if got["type"] == "UnicodeDecodeError":
            return (f"bpe_decode({wanted}) crashed with UnicodeDecodeError: these bytes are not valid UTF-8 on "
                    f"their own; decode with errors='replace' so they become '\\ufffd'")
        return _decode_bytes_mistake(got, wanted, expected)
    return judge


check_bpe_decode = Check(
    exercise="bpe_decode",
    expects=["a function bpe_decode(ids, merges) -> str"],
    tests=[
        *(Test(f"bpe_decode of {text!r}", _decode_probe(ids), _decode_judge(ids, text), weight)
          for ids, text, weight in DECODE_SAMPLES),
        Test("bpe_decode of many ids", _decode_probe(_decode_ids), _decode_judge(_decode_ids), 6.0),
    ],
)
