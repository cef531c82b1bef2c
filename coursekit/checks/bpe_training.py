"""Checks for notebook 01's byte pair encoding training: `pair_counts`, `merge_pair` and `train_bpe`.

Each check has small hand-made cases, worth little, whose messages name a mistake in a few ids, and one test that
carries the exercise: many cases at once (in a grading run drawn from the test's rng), so that any one typical
bug fails it. The probes hold no answer: the judges ask the reference, coursekit.bpe, what is right.
"""

from __future__ import annotations

from coursekit.checks.core import Check, Test, describe, is_public, probe_rng, type_and_value


def reference_bpe():
    """The reference (coursekit.bpe), for judges only: it is the answer, so it is never in a sandbox."""
    from coursekit import bpe

    return bpe


def ids_drawn(rng, low: int = 30, high: int = 60) -> list[int]:
    """Secret ids with many repeats and overlaps: a few small byte values, two-digit ones, a merged id, and a
    run of one id three to five long somewhere.

    >>> import numpy as np; len(ids_drawn(np.random.default_rng(0), 10, 11)) >= 13
    True
    """
    alphabet = [1, 2, 7, 11, 21, 256]
    ids = [int(i) for i in rng.choice(alphabet, size=int(rng.integers(low, high)))]
    at = int(rng.integers(0, len(ids)))
    ids[at:at] = [int(rng.choice(alphabet))] * int(rng.integers(3, 6))
    return ids

# ---------------------------------------------------------------- pair_counts


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
    pair_counts, merge_pair = reference_bpe().pair_counts, reference_bpe().merge_pair
    counts = {(a, b): count for a, b, count in got["rows"]}
    expected = pair_counts(ids)
    if counts == expected:
        return None
    without_overlaps = {pair: len(ids) - len(merge_pair(ids, pair, -1)) for pair in expected}
    if counts == without_overlaps:
        return (f"overlapping pairs count too: {ids} should give {expected}, got {counts} "
                f"(after counting a pair, move on by one id, not two)")
    all_ones = counts.keys() == expected.keys() and set(counts.values()) == {1}
    ends = " or the ".join(end for end, part in (("first", ids[1:]), ("last", ids[:-1])) if counts == pair_counts(part))
    if ends:
        either = " (or each count was set to 1 instead of increased)" if all_ones else ""
        return f"the {ends} pair is missing{either}: the pairs of {ids} are {list(zip(ids, ids[1:]))} (zip(ids, ids[1:]))"
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


# (ids, weight): small cases for the messages; "many ids" carries the exercise.
PAIR_SAMPLES = [([1, 2, 3, 1, 2], 0.5), ([7, 7, 7], 0.5), ([5], 0.05), ([], 0.05),
                ([104, 101, 108, 108, 111, 32, 104, 101, 108, 108, 111], 0.25)]
PUBLIC_PAIR_IDS = [11, 2, 1, 2, 1, 2, 2, 2, 21, 12, 1, 2]


def _pair_ids() -> list[int]:
    """The ids of the "many ids" test: public in a notebook, drawn from the test's rng when grading."""
    return list(PUBLIC_PAIR_IDS) if is_public() else ids_drawn(probe_rng())


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

# ---------------------------------------------------------------- merge_pair

# (ids, pair, new_id, weight). [11, 2, ...]: merging "1 2" in a string of the ids also hits "11 2" and "2 12".
MERGE_SAMPLES = [([1, 2, 3, 1, 2], (1, 2), 256, 0.5), ([7, 7, 7], (7, 7), 256, 0.25), ([5, 1, 2], (1, 2), 300, 0.25),
                 ([4, 5, 6], (1, 2), 256, 0.05), ([11, 2, 1, 2, 12, 1, 2, 1], (1, 2), 256, 0.25)]
# The cases of the test that carries the exercise, in a notebook: overlapping runs, a pair at both ends, pairs
# that only look alike as text, a pair that does not occur.
PUBLIC_MERGE_CASES = [([2, 1, 2, 2, 1, 2, 1, 1, 2, 21, 12, 7], (1, 2), 257), ([7, 7, 7, 7, 7, 3], (7, 7), 300),
                      ([1, 2, 5, 1, 2], (1, 2), 256), ([11, 2, 1, 21, 2, 12, 1, 2, 1], (2, 1), 256),
                      ([3, 3, 4], (4, 3), 258)]


def _merge_cases() -> list[tuple[list[int], tuple[int, int], int]]:
    """The "many ids" cases: public in a notebook, drawn from the test's rng when grading: pairs of one id
    repeated (which overlap in runs) and of two ids, found in the ids, at the start or the end too."""
    if is_public():
        return [(list(ids), pair, new_id) for ids, pair, new_id in PUBLIC_MERGE_CASES]
    rng, cases = probe_rng(), []
    for repeated in (True, False, True, False):
        ids = ids_drawn(rng, 15, 40)
        if repeated:
            first = int(rng.choice(ids))
            at = int(rng.integers(0, len(ids)))
            ids[at:at] = [first] * int(rng.choice([3, 5]))
            pair = (first, first)
        else:
            at = int(rng.integers(0, len(ids) - 1))
            while ids[at] == ids[at + 1]:
                ids[at + 1] = int(rng.choice([1, 2, 7, 11, 21, 256]))
            pair = (ids[at], ids[at + 1])
            where = int(rng.integers(0, len(ids)))
            ids[where:where] = [pair[1], pair[0]]  # the pair reversed is no occurrence
        ids = list(pair) + ids if rng.random() < 0.5 else ids + list(pair)
        cases.append((ids, pair, int(rng.integers(257, 400))))
    return cases


def _merge_probe(cases):
    def probe(function):
        results = []
        for ids, pair, new_id in cases():
            original = list(ids)
            out = function(original, pair, new_id)
            results.append({"result": type_and_value(out), "input_changed": original != ids,
                            "same_list": out is original})
        return results
    return probe


def _merges_mistake(got: list, cases) -> str | None:
    for result, case in zip(got, cases()):
        mistake = _merge_mistake(result, *case)
        if mistake:
            return mistake
    return None


def _merge_mistake(got, ids, pair, new_id) -> str | None:
    expected = reference_bpe().merge_pair(ids, pair, new_id)
    result = got["result"]
    if result["type"] != "list":
        return f"merge_pair should return a new list, got a {result['type']}"
    if got["input_changed"]:
        return "merge_pair changed the list it was given; build and return a new list instead"
    if got.get("same_list"):
        return (f"merge_pair({ids}, {pair}, {new_id}) returned the very list it was given, not a new one: when the "
                f"pair does not occur, return a copy (list(ids)), or a later change to one list changes both")
    if result["value"] == expected:
        return None
    if result["value"] == expected[:-1]:
        return f"the last id is dropped: merge_pair({ids}, {pair}, {new_id}) should be {expected}"
    for mistake, wrong in _wrong_merges(ids, pair, new_id).items():
        if result["value"] == wrong:
            return f"{mistake}: merge_pair({ids}, {pair}, {new_id}) should be {expected}, got {wrong}"
    return f"merge_pair({ids}, {pair}, {new_id}) should be {expected}, got {result['value']}"


def _wrong_merges(ids: list[int], pair: tuple[int, int], new_id: int) -> dict[str, list[int]]:
    """What common mistakes give, to name them: [7, 7, 7] -> [7, 256], [256, 256, 7], ..."""
    first, second = pair
    merge_pair = reference_bpe().merge_pair
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
        "the pair was matched in either order: (a, b) is not (b, a); compare (ids[i], ids[i + 1]) == pair":
            merge_pair(merge_pair(ids, pair, new_id), (second, first), new_id) if first != second else list(ids),
    }


check_merge_pair = Check(
    exercise="merge_pair",
    expects=["a function merge_pair(ids, pair, new_id) -> list[int]"],
    tests=[
        *(Test(f"merge_pair({ids}, {pair}, {new_id})", _merge_probe(lambda case=(ids, pair, new_id): [case]),
               lambda got, case=(ids, pair, new_id): _merges_mistake(got, lambda: [case]), weight=weight)
          for ids, pair, new_id, weight in MERGE_SAMPLES),
        Test("merge_pair of many ids with repeats and overlaps", _merge_probe(_merge_cases),
             lambda got: _merges_mistake(got, _merge_cases), weight=4.0),
    ],
)

# ---------------------------------------------------------------- train_bpe

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


def _other_size_case() -> tuple[str, int]:
    """The same kind of text with another number of merges: a size fixed to the notebook's own fails."""
    text, merges = _train_case()
    return text, 7 if is_public() else merges + int(probe_rng().integers(3, 9))


def _train_probe(function, case=_train_case):
    text, merges = case()
    return _merges_as_rows(function(text, 256 + merges))


def _train_shape_mistake(got, case=_train_case) -> str | None:
    if "error" in got:
        return got["error"]
    wanted = case()[1]
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
    bpe = reference_bpe()
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
    other_starts = [[ord(char) for char in text], list(text.encode("latin-1", errors="replace"))]
    if mistake and any(_replay_mistake(ids, got["rows"]) is None for ids in other_starts):
        return ("these merges were learned on characters (code points, ord) or Latin-1, not on bytes: "
                "start from ids = list(text.encode('utf-8')), where 'é' is the two bytes [195, 169], not 233")
    return mistake


def _short_case() -> tuple[str, int]:
    """A text whose pairs run out before vocab_size: public "abab", a few random letters when grading."""
    if is_public():
        return "abab", 266
    rng = probe_rng()
    return "".join(str(letter) for letter in rng.choice(list("abc"), size=int(rng.integers(2, 6)))), 270


def _short_probe(function):
    text, vocab_size = _short_case()
    return _merges_as_rows(function(text, vocab_size))


def _stops_mistake(got) -> str | None:
    text, vocab_size = _short_case()
    if "error" in got:
        return got["error"]
    ids = list(text.encode("utf-8"))
    mistake = _replay_mistake(ids, got["rows"])
    if mistake:
        return mistake
    for first, second, new_id in got["rows"]:
        ids = reference_bpe().merge_pair(ids, (first, second), new_id)
    if len(ids) > 1:
        return (f"train_bpe({text!r}, {vocab_size}) stopped with the pair {tuple(ids[:2])} left to merge: keep "
                f"merging until vocab_size, or until no pair is left")
    return None


def _runs_case() -> tuple[str, int]:
    """Overlapping pairs: "aaax" r times, a run of 2r + 1 b's, then "yz" r + 1 times. Counted with overlaps, (a, a)
    and (b, b) occur 2r times and win; counted without, r times, and (y, z) wins. Merged from the left, each "aaa"
    becomes [new, a]; from the right [a, new], whose pairs then win a later step but do not occur in the right ids."""
    rng = None if is_public() else probe_rng()
    a, x, b, y, z = "axbyz" if rng is None else (str(c) for c in rng.choice(list("abcdefxyz"), size=5, replace=False))
    r = 4 if rng is None else int(rng.integers(3, 6))
    return (a * 3 + x) * r + " " + b * (2 * r + 1) + (y + z) * (r + 1), 8


def _runs_mistake(got) -> str | None:
    if "error" in got:
        return got["error"]
    text, _ = _runs_case()
    mistake = _replay_mistake(list(text.encode("utf-8")), got["rows"])
    if mistake:
        return (f"on {text!r}, where pairs overlap in runs of one byte: {mistake}. Count every overlapping pair "
                f"(zip(ids, ids[1:])) and merge from the left (merge_pair)")
    return None


check_train_bpe = Check(
    exercise="train_bpe",
    expects=["a function train_bpe(text, vocab_size) -> dict[tuple[int, int], int]"],
    tests=[
        Test("returns vocab_size - 256 merges with ids 256, 257, ...", _train_probe, _train_shape_mistake, 0.2),
        Test("every merge is a most frequent pair of the bytes at its step", _train_probe, _train_greedy_mistake,
             4.0),
        Test("stops early when no pair is left", _short_probe, _stops_mistake, 0.2),
        Test("runs of one byte: overlapping pairs counted, merged from the left",
             lambda function: _train_probe(function, _runs_case), _runs_mistake, 1.0),
        Test("learns as many merges as another vocab_size asks for",
             lambda function: _train_probe(function, _other_size_case),
             lambda got: _train_shape_mistake(got, _other_size_case), 0.2),
    ],
)
