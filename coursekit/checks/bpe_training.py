"""Checks for notebook 01's byte pair encoding training: `pair_counts`, `merge_pair` and `train_bpe`.

Each check has small hand-made cases, worth little, whose messages name a mistake in a few ids, and one test that
carries the exercise: many cases at once (in a grading run drawn from the test's rng), so that any one typical
bug fails it. The probes hold no answer: the judges ask the reference, coursekit.bpe, what is right.
"""

from __future__ import annotations

import itertools

from coursekit.checks.core import Check, Test, describe, integral, is_public, probe_rng, shown, type_and_value


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

def separate(ids):
    """The same ids, each a new int object (none shared with another list or pair), as ids read from a file are:
    code that compares ids with `is` (true only for one object; Python shares the objects of -5..256 alone) then
    fails on ids above 256.

    >>> a = separate([300]); a == [300] and a[0] is not separate([300])[0]
    True
    """
    return type(ids)(int(str(i)) for i in ids)

# ---------------------------------------------------------------- pair_counts


def _counts_as_rows(counts) -> dict:
    """Pair counts as plain rows [[first, second, count], ...], or a description of what came back instead. Ids and
    counts must be whole numbers (an int of any int-like type): a float is shown as it came back, never rounded."""
    if not isinstance(counts, dict):
        return {"error": f"pair_counts should return a dict {{(a, b): count}}, got {describe(counts)}"}
    rows = []
    for key, value in counts.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            return {"error": f"keys should be pairs (a, b) as tuples, got the key {key!r}"}
        if not (integral(key[0]) and integral(key[1])):
            return {"error": f"the ids of a pair should be ints, as in the ids given, got the key {key!r}"}
        if not integral(value):
            return {"error": f"a count is the number of times a pair occurs, a whole number (int), but the count "
                             f"of {key!r} is {value!r} ({type(value).__name__})"}
        rows.append([int(key[0]), int(key[1]), int(value)])
    return {"rows": rows}


def _counts_probe(cases):
    """pair_counts on each case, each given a copy of the ids: the copy must come back unchanged (train_bpe uses
    the same ids again after counting them)."""
    def probe(function):
        results = []
        for ids in cases():
            given = list(ids)
            results.append({**_counts_as_rows(function(given)), "input_changed": given != ids})
        return results
    return probe


def _counts_cases_mistake(got: list, cases) -> str | None:
    cases = cases()
    for result, ids in zip(got, cases):
        mistake = _counts_mistake(result, ids, cases)
        if mistake:
            return mistake
    return None


def _counts_mistake(got, ids: list[int], cases=()) -> str | None:
    if "error" in got:
        return got["error"]
    if got["input_changed"]:
        return (f"pair_counts changed the list of ids it was given ({shown(ids)} was not the same afterwards): "
                f"train_bpe merges those same ids after counting them, so leave the argument as it is")
    pair_counts, merge_pair = reference_bpe().pair_counts, reference_bpe().merge_pair
    counts = {(a, b): count for a, b, count in got["rows"]}
    expected = pair_counts(ids)
    if counts == expected:
        return None
    earlier = [other for other in cases if other != ids and pair_counts(other) == counts]
    if earlier:
        return (f"pair_counts({shown(ids)}) returned the counts of other ids given in another call, "
                f"{shown(earlier[0])}: count the pairs of the ids given each time (keep nothing between calls, "
                f"e.g. no cache keyed on len(ids))")
    counted = sum(counts.values())
    if len(ids) > 20 and counts == pair_counts(ids[:counted + 1]):
        return (f"only the first {counted + 1} of the {len(ids)} ids were counted: count every pair of the list, "
                f"however long it is")
    without_overlaps = {pair: len(ids) - len(merge_pair(ids, pair, -1)) for pair in expected}
    if counts == without_overlaps:
        return (f"overlapping pairs count too: {shown(ids)} should give {shown(expected)}, got {shown(counts)} "
                f"(after counting a pair, move on by one id, not two)")
    all_ones = counts.keys() == expected.keys() and set(counts.values()) == {1}
    ends = " or the ".join(end for end, part in (("first", ids[1:]), ("last", ids[:-1])) if counts == pair_counts(part))
    if ends:
        either = " (or each count was set to 1 instead of increased)" if all_ones else ""
        return (f"the {ends} pair is missing{either}: the pairs of {shown(ids)} are {shown(list(zip(ids, ids[1:])))} "
                f"(zip(ids, ids[1:]))")
    every_other = {}
    for a, b in list(zip(ids, ids[1:]))[::2]:
        every_other[a, b] = every_other.get((a, b), 0) + 1
    if counts == every_other:
        return (f"you counted every other pair (a step of 2): pairs overlap, so {shown(ids)} has the pairs "
                f"{shown(list(zip(ids, ids[1:])))} (zip(ids, ids[1:]))")
    if all_ones:
        return (f"every count is 1: add one to the pair's count each time you see it; pair_counts({shown(ids)}) "
                f"should be {shown(expected)}")
    return f"pair_counts({shown(ids)}) should be {shown(expected)}, got {shown(counts)}"


# (ids, weight): small cases for the messages; "many ids" carries the exercise.
PAIR_SAMPLES = [([1, 2, 3, 1, 2], 0.5), ([7, 7, 7], 0.5), ([5], 0.05), ([], 0.05),
                ([104, 101, 108, 108, 111, 32, 104, 101, 108, 108, 111], 0.25)]
PUBLIC_PAIR_IDS = [11, 2, 1, 2, 1, 2, 2, 2, 21, 12, 1, 2]
LONG_IDS = 150  # longer than any shortcut that looks at the first 64 or 100 ids


def _pair_cases() -> list[list[int]]:
    """The ids of the "many ids" test: public in a notebook, drawn from the test's rng when grading. Two lists of
    the same length (a result kept from an earlier call is wrong for the second) and a long one."""
    if is_public():
        twin = PUBLIC_PAIR_IDS[::-1]
        long = [PUBLIC_PAIR_IDS[(i * 7) % len(PUBLIC_PAIR_IDS)] + (i % 3 == 0) for i in range(LONG_IDS)]
        return [list(PUBLIC_PAIR_IDS), twin, long]
    rng = probe_rng()
    first = ids_drawn(rng)
    twin = ids_drawn(rng, len(first) - 5, len(first) - 4)  # the run of 3 to 5 makes it another length; trim it
    twin = (twin + first)[:len(first)]
    return [first, twin, ids_drawn(rng, LONG_IDS, 2 * LONG_IDS)]


check_pair_counts = Check(
    exercise="pair_counts",
    expects=["a function pair_counts(ids) -> dict[tuple[int, int], int]"],
    tests=[
        *(Test(f"pair_counts({ids})", _counts_probe(lambda ids=ids: [list(ids)]),
               lambda got, ids=ids: _counts_cases_mistake(got, lambda: [list(ids)]), weight=weight)
          for ids, weight in PAIR_SAMPLES),
        Test("pair_counts of many ids with repeats and overlaps, twice the same length and a long list",
             _counts_probe(_pair_cases), lambda got: _counts_cases_mistake(got, _pair_cases), weight=4.0),
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
# Ids of earlier merges (above 256), which the probe hands over as separate int objects: `is` never matches them.
PUBLIC_HIGH_CASE = ([258, 300, 257, 300, 257, 257, 300, 1], (300, 257), 301)


def _merge_cases() -> list[tuple[list[int], tuple[int, int], int]]:
    """The "many ids" cases: public in a notebook, drawn from the test's rng when grading: pairs of one id
    repeated (which overlap in runs) and of two ids, found in the ids, at the start or the end too."""
    if is_public():
        return [(list(ids), pair, new_id) for ids, pair, new_id in PUBLIC_MERGE_CASES] + [([1, 2, 3] * 50, (2, 3), 256)]
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
    long = ids_drawn(rng, LONG_IDS, 2 * LONG_IDS)  # longer than a shortcut that looks at the first 64 or 100 ids
    return [*cases, (long, (long[-2], long[-1]), 300)]


def _high_cases() -> list[tuple[list[int], tuple[int, int], int]]:
    """A pair of earlier merges' ids (above 256) in ids of them: public in a notebook, drawn when grading."""
    if is_public():
        ids, pair, new_id = PUBLIC_HIGH_CASE
        return [(list(ids), pair, new_id)]
    rng = probe_rng()
    ids = [i + 257 for i in ids_drawn(rng, 10, 20)]
    at = int(rng.integers(0, len(ids) - 1))
    return [(ids, (ids[at], ids[at + 1]), 600)]


def _merge_probe(cases):
    def probe(function):
        results = []
        for ids, pair, new_id in cases():
            original = separate(ids)
            out = function(original, separate(pair), new_id)
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
        return (f"merge_pair({shown(ids)}, {pair}, {new_id}) returned the very list it was given, not a new one: when the "
                f"pair does not occur, return a copy (list(ids)), or a later change to one list changes both")
    if result["value"] == expected:
        return None
    if result["value"] == expected[:-1]:
        return f"the last id is dropped: merge_pair({shown(ids)}, {pair}, {new_id}) should be {shown(expected)}"
    for mistake, wrong in _wrong_merges(ids, pair, new_id).items():
        if result["value"] == wrong:
            return f"{mistake}: merge_pair({shown(ids)}, {pair}, {new_id}) should be {shown(expected)}, got {shown(wrong)}"
    if isinstance(result["value"], list) and len(result["value"]) < len(expected) - 1:
        return (f"merge_pair of {len(ids)} ids should return {len(expected)} ids, got {len(result['value'])}: "
                f"merge along the whole list, however long it is")
    return f"merge_pair({shown(ids)}, {pair}, {new_id}) should be {shown(expected)}, got {shown(result['value'])}"


def _wrong_merges(ids: list[int], pair: tuple[int, int], new_id: int) -> dict[str, list[int]]:
    """What common mistakes give, to name them: [7, 7, 7] -> [7, 256], [256, 256, 7], ..."""
    first, second = pair
    merge_pair = reference_bpe().merge_pair
    starts = [i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == pair]
    as_text = " ".join(map(str, ids)).replace(f"{first} {second}", str(new_id)).split()
    return {
        "the ids were compared with is, which holds only for one int object (Python shares the objects of -5..256 "
        "alone, so ids above 256 read or built separately never match): compare ids with ==, not is":
            list(ids) if max(pair) > 256 else merge_pair(ids, pair, new_id),
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
        Test("merge_pair of ids above 256 (earlier merges), each a separate int object", _merge_probe(_high_cases),
             lambda got: _merges_mistake(got, _high_cases), weight=0.25),
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
        if not (integral(key[0]) and integral(key[1]) and integral(value)):
            return {"error": f"merges maps a pair of ids to a new id, all ints (bytes are 0-255, new ids 256, 257, "
                             f"...), got {key!r}: {value!r}"}
        rows.append([int(key[0]), int(key[1]), int(value)])
    return {"rows": rows}


def _long_case() -> tuple[str, int]:
    """A passage of the corpus longer than 200 characters, with capitals, newlines and whitespace at both ends,
    and more merges than 300 - 256: a trainer that cuts the text, changes it or caps vocab_size learns other merges."""
    from coursekit.checks.characters import corpus

    text, accents = corpus(), " héhé naïve" * 4  # a trainer on characters (ord) learns (104, 233) = "hé"
    if is_public():
        return "  " + text[:600] + accents + " \n", 60
    rng = probe_rng()
    start = int(rng.integers(0, len(text) - 900))
    edges = [" ", "\n", "  ", "\n\n", " \n"]
    passage = text[start:start + int(rng.integers(500, 900))] + accents
    return str(rng.choice(edges)) + passage + str(rng.choice(edges)), int(rng.integers(50, 70))


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
    if len(ids) > wanted + 1:
        return (f"train_bpe(text, vocab_size=256 + {wanted}) should learn {wanted} merges, got {len(ids)}, more than "
                f"vocab_size allows: were merges kept from an earlier call (a default argument such as merges={{}}, "
                f"or a dict outside the function)? Start each call with an empty dict")
    if len(ids) != wanted:
        return (f"train_bpe(text, vocab_size=256 + {wanted}) should learn {wanted} merges, got {len(ids)}:"
                f" the vocabulary is the 256 bytes plus one id per merge, so new ids run from 256 to vocab_size - 1")
    if ids != list(range(256, 256 + wanted)):
        return f"new ids should be 256, 257, ... in the order the merges are learned; got {ids[:5]}..."
    return None


def _replay_mistake(ids: list[int], rows: list[list[int]]) -> str | None:
    """Replay merges on ids: None when each is a most frequent pair at its step (any tie-break), else why not."""
    bpe = reference_bpe()
    known, history = set(ids) | set(range(256)), []
    for step, (first, second, new_id) in enumerate(rows):
        if first not in known or second not in known:
            return (f"merge {step} is {(first, second)}, but ids are bytes 0-255 or earlier merges: train on "
                    f"UTF-8 bytes, ids = list(text.encode('utf-8')), not on characters")
        history.append((ids, (first, second)))
        counts = bpe.pair_counts(ids)
        if counts.get((first, second), 0) < max(counts.values(), default=0):
            return _wrong_pick(history, rows[step:])
        ids = bpe.merge_pair(ids, (first, second), new_id)
        known.add(new_id)
    return None


def _every_other(ids: list[int]) -> dict:
    counts = {}
    for pair in list(zip(ids, ids[1:]))[::2]:
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _once_each(ids: list[int]) -> dict:
    merge_pair = reference_bpe().merge_pair
    return {pair: len(ids) - len(merge_pair(ids, pair, -1)) for pair in set(zip(ids, ids[1:]))}


def _is_top(counts: dict, pair: tuple) -> bool:
    return pair in counts and counts[pair] == max(counts.values())


def _second(counts: dict) -> int:
    """The count of the second pair when the pairs are sorted by count (the most frequent's when two tie)."""
    return sorted(counts.values())[-2] if len(counts) > 1 else -1


# Ways of choosing a pair that are not "a most frequent pair of the current ids", each with what to do instead:
# (does the pair chosen from these ids follow it, the mistake). A way is named only when it explains every merge
# up to the wrong one, so a chance agreement at one step names nothing.
WRONG_PICKS = [
    (lambda ids, pair, counts: _is_top(counts, pair[::-1]),
     "the pair is stored reversed; keep (a, b) in the order the two ids appear, the order zip(ids, ids[1:]) gives"),
    (lambda ids, pair, counts: pair == max(counts),
     "the pair chosen is the largest pair, not the most frequent one: max(counts) compares the keys (the pairs); "
     "read about max's key argument to compare their counts"),
    (lambda ids, pair, counts: counts.get(pair) == min(counts.values()),
     "that is one of the least frequent pairs; merge the most frequent one (max, not min)"),
    (lambda ids, pair, counts: _is_top(_every_other(ids), pair),
     "the pairs were counted with a step of 2 (every other pair); pairs overlap: count every pair of "
     "zip(ids, ids[1:])"),
    (lambda ids, pair, counts: _is_top(_once_each(ids), pair),
     "overlapping occurrences were counted once (as merge_pair would replace them); count every pair of "
     "zip(ids, ids[1:]), overlapping ones too"),
    (lambda ids, pair, counts: counts.get(pair) == _second(counts),
     "that is the second most frequent pair; merge the most frequent one"),
]


def _wrong_pick(history: list[tuple[list[int], tuple]], rest: list[list[int]]) -> str:
    """Why the last merge of `history` ([(ids at the step, pair merged)], one per step up to the wrong one) is not a
    most frequent pair of its ids: the mistake whose choice it is. A way of choosing is named when it explains every
    merge up to the wrong one; of several, the one that also explains the most merges after it (`rest`)."""
    bpe = reference_bpe()
    step, (ids, pair) = len(history) - 1, history[-1]
    later, current = [], ids
    for first, second, new_id in rest[1:6]:  # a few more merges tell the ways apart; all of them would be slow
        current = bpe.merge_pair(current, (first, second), new_id)
        later.append((current, (first, second)))
    counts = bpe.pair_counts(ids)
    count, most = counts.get(pair, 0), max(counts.values())
    top = max(counts, key=counts.get)
    said = f"merge {step} was {pair}, which occurs {count} times at that point, but {top} occurs {most} times"

    def follows_at(follows, ids, pair) -> bool:
        return len(ids) < 2 or follows(ids, pair, bpe.pair_counts(ids))

    ways = [(sum(1 for _ in itertools.takewhile(lambda at: follows_at(follows, *at), later)), -rank, mistake)
            for rank, (follows, mistake) in enumerate(WRONG_PICKS)
            if all(follows_at(follows, *at) for at in history)]  # each explains every merge up to the wrong one
    if ways:
        return f"{said}: {max(ways)[2]}"  # the one that explains the most merges after it (the first listed of ties)
    if not count:
        if not step:
            return (f"{said}: {pair} does not occur in the text at all. Were merges kept from an earlier call (a "
                    f"default argument such as merges={{}}, or a dict outside the function)? Start each call with "
                    f"an empty dict")
        return (f"{said}: {pair} does not occur in the ids at that step: after each merge, apply it to the ids "
                f"(merge_pair, which skips both ids of each occurrence) and count the pairs again")
    start, merged = history[0][0], [pair for _, pair in history[:-1]]
    stale = {p: n for p, n in bpe.pair_counts(start).items() if p not in merged}
    if step and stale.get(pair) == max(stale.values(), default=0):
        return f"{said}: after each merge, apply it to the ids and count the pairs again"
    return f"{said}: each merge is a most frequent pair of the ids as they are at its step"


# What a trainer that did not start from the text's UTF-8 bytes learned from: (what, the ids it started from).
OTHER_STARTS = [
    ("characters (code points, ord) or Latin-1, not on bytes: start from ids = list(text.encode('utf-8')), where 'é' "
     "is the two bytes [195, 169], not 233", lambda text: [ord(char) for char in text]),
    ("characters (code points, ord) or Latin-1, not on bytes: start from ids = list(text.encode('utf-8')), where 'é' "
     "is the two bytes [195, 169], not 233", lambda text: list(text.encode("latin-1", errors="replace"))),
    ("UTF-16 bytes (text.encode('utf-16')): BPE here starts from the UTF-8 bytes, list(text.encode('utf-8'))",
     lambda text: list(text.encode("utf-16"))),
    ("UTF-16 bytes (text.encode('utf-16')): BPE here starts from the UTF-8 bytes, list(text.encode('utf-8'))",
     lambda text: list(text.encode("utf-16-le"))),
    ("the text without the whitespace at its ends (strip): train on the text as it is, every space and newline "
     "included", lambda text: list(text.strip().encode("utf-8"))),
    ("the text without the whitespace at its end (rstrip): train on the text as it is, every space and newline "
     "included", lambda text: list(text.rstrip().encode("utf-8"))),
    ("the text without the newline at its end: train on the text as it is, every space and newline included",
     lambda text: list(text.rstrip("\n").encode("utf-8"))),
    ("the text lowercased: train on the text as it is; 'R' and 'r' are different bytes",
     lambda text: list(text.lower().encode("utf-8"))),
]


def _greedy_mistake(got, case) -> str | None:
    """The merges of train_bpe on case(): each a most frequent pair of the text's bytes at its step, or why not."""
    shape = _train_shape_mistake(got, case)
    if shape:
        return f"fix this first: {shape}"
    text = case()[0]
    mistake = _replay_mistake(list(text.encode("utf-8")), got["rows"])
    if not mistake:
        return None
    wrong_start = next((what for what, start in OTHER_STARTS
                        if start(text) != list(text.encode("utf-8")) and _replay_mistake(start(text), got["rows"])
                        is None), None)
    if wrong_start:
        return f"these merges were learned on {wrong_start}"
    return mistake


def _train_greedy_mistake(got) -> str | None:
    return _greedy_mistake(got, _train_case)


def _long_probe(function) -> dict:
    """train_bpe on a short text, then on the long passage: what the second call returns must not depend on the
    first (merges kept in a default argument or a global carry over)."""
    text, merges = _train_case()
    earlier = _merges_as_rows(function(text, 256 + 8))
    return {**_train_probe(function, _long_case), "earlier": earlier.get("rows", [])}


def _long_mistake(got) -> str | None:
    text, merges = _long_case()
    mistake = _greedy_mistake(got, _long_case)
    if not mistake:
        return None
    earlier = [row[:2] for row in got["earlier"]]
    if earlier and [row[:2] for row in got.get("rows", [])[:len(earlier)]] == earlier:
        return (f"train_bpe on a passage of {len(text)} characters returned first the merges of the text of the call "
                f"before ({shown([tuple(pair) for pair in earlier], 4)}): merges were kept from an earlier call (a "
                f"default argument such as merges={{}}, or a dict outside the function); start each call with an "
                f"empty dict")
    return f"on a passage of {len(text)} characters with {merges} merges: {mistake}"


def _short_case() -> tuple[str, int]:
    """A text whose pairs run out before vocab_size: public " abab\\n", a few random letters when grading, with a
    space in front and a newline at the end (part of the text: the last merges join them)."""
    if is_public():
        return " abab\n", 266
    rng = probe_rng()
    return " " + "".join(str(letter) for letter in rng.choice(list("abc"), size=int(rng.integers(2, 6)))) + "\n", 270


def _merged(ids: list[int], rows: list[list[int]]) -> list[int]:
    for first, second, new_id in rows:
        ids = reference_bpe().merge_pair(ids, (first, second), new_id)
    return ids


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
    if len(_merged(ids, got["rows"])) > 1:
        ids = _merged(ids, got["rows"])
        wrong_start = next((what for what, start in OTHER_STARTS if start(text) != list(text.encode("utf-8"))
                            and len(_merged(start(text), got["rows"])) == 1), None)
        if wrong_start:
            return f"train_bpe({text!r}, {vocab_size}): these merges were learned on {wrong_start}"
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
        Test("every merge is a most frequent pair on a long passage, its capitals and the whitespace at both "
             "ends included", _long_probe, _long_mistake, 2.0),
        Test("stops early when no pair is left", _short_probe, _stops_mistake, 0.2),
        Test("runs of one byte: overlapping pairs counted, merged from the left",
             lambda function: _train_probe(function, _runs_case), _runs_mistake, 1.0),
        Test("learns as many merges as another vocab_size asks for",
             lambda function: _train_probe(function, _other_size_case),
             lambda got: _train_shape_mistake(got, _other_size_case), 0.2),
    ],
)
