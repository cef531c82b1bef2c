"""Checks for notebook 01's BPE `bpe_encode` and `bpe_decode`, both given the same table of merges.

The table is data (learned once by the reference trainer and pasted here), so no trainer is loaded where student
code runs. Small hand-made texts and ids, worth little, name the mistakes; the test that carries each exercise
runs many of them at once, in a grading run drawn from the test's rng.
"""

from __future__ import annotations

from coursekit.checks.bpe_training import reference_bpe
from coursekit.checks.core import Check, Test, is_public, probe_rng, type_and_value

# Learned by coursekit.bpe.train_bpe_naive on "the theme of the thesis: 'these are the themes' " * 4 + "héllo"
# (vocab_size=276).
FIXED_MERGES = {(104, 101): 256, (116, 256): 257, (32, 257): 258, (109, 101): 259, (258, 259): 260, (32, 39): 261,
                (32, 97): 262, (32, 111): 263, (105, 115): 264, (114, 101): 265, (115, 101): 266, (115, 264): 267,
                (257, 266): 268, (258, 267): 269, (260, 115): 270, (262, 265): 271, (263, 102): 272, (32, 104): 273,
                (108, 108): 274, (169, 274): 275}
# (text, weight). "he has": the merge (104, 101) "he" must win over the later (32, 104) " h", whatever the order
# of the pairs; in "hi, he has his hat" " h" is the most frequent pair but "he" was learned first.
CODEC_SAMPLES = [("the theme", 0.25), ("hello there! he has his hat", 0.25), ("naïve café 🙂", 0.05), ("", 0.05),
                 ("zzz", 0.05), ("oh hi, he has his hat", 0.5), ("he", 0.05)]
PUBLIC_TEXTS = ["the themes of these theses: he has 'héllo' there", "Ah, his hat: He hit him, he is here",
                " the thesis of these themes of the themes is "]
CODEC_WORDS = ["the", "theme", "these", "thesis", "he", "has", "his", "hat", "héllo", "café", "🙂", "are", "of", "s",
               "The", "HE", "ROMEO:"]
EDGES = ["", " ", "  ", "\n", "\t "]  # around the secret texts: leading and trailing whitespace is part of the text
H_WORDS = ["hi", "he", "has", "his", "hat", "him", "oh", "ah", "is", "the"]  # " h" outnumbers "he": order matters


def _codec_texts() -> list[str]:
    """The "many texts" of bpe_encode: public in a notebook, random words when grading (two texts of words that
    start with h, where merging the most frequent pair first differs from merging in learning order)."""
    if is_public():
        return list(PUBLIC_TEXTS)
    rng = probe_rng()
    texts = [str(rng.choice(EDGES[1:])) + " ".join(str(word) for word in rng.choice(CODEC_WORDS, size=int(
        rng.integers(6, 16)))) + str(rng.choice(EDGES)) for _ in range(2)]
    texts += [" ".join(str(word) for word in rng.choice(H_WORDS, size=int(rng.integers(6, 12)))) for _ in range(2)]
    return texts


def _by_count(ids: list[int], merges: dict, pick, ties_by_rank: bool = True) -> list[int]:
    """What a wrong bpe_encode gives: merge by how often a pair occurs (pick = max or min), not by learning order;
    ties go to the earliest learned pair, or (ties_by_rank=False) to the pair that occurs first."""
    bpe = reference_bpe()
    while True:
        counts = {pair: n for pair, n in bpe.pair_counts(ids).items() if pair in merges}
        if not counts:
            return ids
        pair = pick(counts, key=lambda p: (counts[p], -merges[p]) if ties_by_rank else counts[p])
        ids = bpe.merge_pair(ids, pair, merges[pair])


def _by_rank(ids: list[int], merges: dict, pick, limit: int | None = None) -> list[int]:
    """Merge by new id (pick = min is right, max is a mistake), at most `limit` times."""
    merge_pair, done = reference_bpe().merge_pair, 0
    while limit is None or done < limit:
        present = [pair for pair in zip(ids, ids[1:]) if pair in merges]
        if not present:
            break
        pair = pick(present, key=merges.get)
        ids, done = merge_pair(ids, pair, merges[pair]), done + 1
    return ids


def _leftmost_once(ids: list[int], merges: dict) -> list[int]:
    """What a scan for the first adjacent pair in merges gives, merging that one position and starting over."""
    while True:
        at = next((i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) in merges), None)
        if at is None:
            return ids
        ids = ids[:at] + [merges[ids[at], ids[at + 1]]] + ids[at + 2:]


# Other orders a bpe_encode may merge in: (what it merges first, data -> the ids it ends with, each way to break ties)
ORDER_MISTAKES = [
    ("the most frequent pair", lambda data: [_by_count(data, FIXED_MERGES, max),
                                             _by_count(data, FIXED_MERGES, max, ties_by_rank=False)]),
    ("the least frequent pair", lambda data: [_by_count(data, FIXED_MERGES, min),
                                              _by_count(data, FIXED_MERGES, min, ties_by_rank=False)]),
    ("the pair with the highest new id", lambda data: [_by_rank(data, FIXED_MERGES, max)]),
    ("the leftmost pair that is in merges", lambda data: [_by_rank(data, FIXED_MERGES, lambda found, key: found[0]),
                                                          _leftmost_once(data, FIXED_MERGES)]),
]


def _encode_mistake(got, text: str) -> str | None:
    bpe = reference_bpe()
    data = list(text.encode("utf-8"))
    expected = bpe.apply_merges(data, FIXED_MERGES)
    if got["type"] != "list":
        return f"bpe_encode should return a list of ints, got a {got['type']}"
    ids = got["value"]
    if ids == expected:
        return None
    said = f"bpe_encode({text!r}) should be {expected}, got {ids}"
    if ids == data:
        return (f"bpe_encode({text!r}) returned the raw bytes: no merge was applied. Pick the pair to merge by its "
                f"merge id, min(pairs, key=lambda pair: merges.get(pair, float('inf'))) (the earliest learned), not "
                f"the text's most frequent pair, which may be in no merge; stop only when no pair is in merges. "
                f"(Encoding each character on its own gives this too: merges join bytes across characters, so "
                f"encode the text's bytes as one list)")
    if ids == [i for char in text for i in bpe.apply_merges(list(char.encode("utf-8")), FIXED_MERGES)]:
        return (f"{said}: each character was encoded on its own, but merges join bytes across characters "
                f"('t' and 'h' into 'th'): encode the text's bytes as one list, list(text.encode('utf-8'))")
    if ids == bpe.apply_merges([ord(char) for char in text], FIXED_MERGES):
        return (f"{said}: start from the UTF-8 bytes, list(text.encode('utf-8')), not the characters' code "
                f"points (ord)")
    explained = [what for what, variant in ORDER_MISTAKES if ids in variant(data)]
    if explained:
        also = f" (or {' first, or '.join(explained[1:])} first: on this text they give the same)" \
            if explained[1:] else ""
        return (f"{said}: you merged {explained[0]} first{also}; bpe_encode must apply the merges in the order they "
                f"were learned: always the adjacent pair with the lowest new id, min(pairs, key=merges[pair]), "
                f"however often it occurs and wherever it is")
    if isinstance(ids, list) and len(ids) > len(expected) and _by_rank(data, FIXED_MERGES, min, 1) == ids:
        return f"{said}: only one merge was applied; keep merging (a while loop) until no adjacent pair is in merges"
    return (f"{said}: apply the merges in the order they were learned: repeatedly merge the adjacent pair with the "
            f"lowest new id (merges[pair]), until no adjacent pair is in merges (a merge can make a new pair that "
            f"is in merges)")


def _encode_probe(texts):
    return lambda encode: [type_and_value(encode(text, dict(FIXED_MERGES))) for text in texts()]


def _first_mistake(judge_one, got: list, cases: list) -> str | None:
    """The first of a list of results that `judge_one(result, case)` finds wrong, or None."""
    return next(filter(None, (judge_one(result, case) for result, case in zip(got, cases))), None)


check_bpe_encode = Check(
    exercise="bpe_encode",
    expects=["a function bpe_encode(text, merges) -> list[int]"],
    tests=[
        *(Test(f"bpe_encode({text!r})", _encode_probe(lambda text=text: [text]),
               lambda got, text=text: _first_mistake(_encode_mistake, got, [text]), weight)
          for text, weight in CODEC_SAMPLES),
        Test("bpe_encode of many texts", _encode_probe(_codec_texts),
             lambda got: _first_mistake(_encode_mistake, got, _codec_texts()), 4.0),
    ],
)

# ---------------------------------------------------------------- bpe_decode


def _fixed_vocab() -> dict[int, bytes]:
    return reference_bpe().BPETokenizer(FIXED_MERGES).vocab  # id -> its bytes


def _decode_text(ids: list[int]) -> str:
    vocab = _fixed_vocab()
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def _decode_mistake(got, ids: list[int]) -> str | None:
    expected = _decode_text(ids)
    if got["type"] == "UnicodeDecodeError":
        return (f"bpe_decode({ids}) crashed with UnicodeDecodeError: these bytes are not valid UTF-8 on "
                f"their own; decode with errors='replace' so they become '\\ufffd'")
    if got["type"] == "bytes" or got["type"] == "list":
        return "bpe_decode should return a str: join the bytes, then .decode('utf-8', errors='replace')"
    if got["type"] != "str":
        return f"bpe_decode should return a str, got a {got['type']}"
    if got["value"] == expected:
        return None
    said = f"bpe_decode({ids}) should be {expected!r}, got {got['value']!r}"
    vocab = _fixed_vocab()
    token_bytes = [vocab.get(i, b"") for i in ids]
    if got["value"] == "".join(token.decode("utf-8", errors="replace") for token in token_bytes):
        return f"{said}: a character's bytes can be split over several tokens, so join all the bytes first and decode once"
    if got["value"] == b"".join(token_bytes).decode("utf-8", errors="ignore"):
        return f"{said}: errors='ignore' drops invalid bytes silently; use errors='replace' so they show as '\\ufffd'"
    return said


# (ids, what they spell, weight): the ids of CODEC_SAMPLES under FIXED_MERGES, as data (the probe must not encode:
# that is an exercise), and half an emoji: invalid UTF-8 must not crash.
DECODE_SAMPLES = [([257, 260], "the theme", 0.25),
                  ([256, 274, 111, 258, 265, 33, 32, 256, 273, 97, 115, 273, 264, 273, 97, 116],
                   "hello there! he has his hat", 0.25),
                  ([110, 97, 195, 175, 118, 101, 32, 99, 97, 102, 195, 169, 32, 240, 159, 153, 130],
                   "naïve café 🙂", 0.25),
                  ([], "", 0.05), ([240, 159], "\ufffd", 0.25)]
PUBLIC_DECODE_IDS = [[258, 32, 101, 275, 111, 32, 99, 97, 102, 195, 169, 272, 195, 159, 153, 130, 270, 255, 0],
                     [104, 195, 275, 111, 32, 240, 159, 153, 130, 261, 264, 32, 226, 130],
                     [269, 263, 268, 271, 195]]
SPLIT_CHARACTERS = [[195, 275], [240, 159, 153, 130], [226, 130, 172], [195], [159, 153]]  # 'é' in two tokens, ...


def _decode_cases() -> list[list[int]]:
    """The "many ids": public in a notebook, random ids of the vocabulary when grading, each list with a character
    whose bytes are split over tokens and bytes that are not valid UTF-8 on their own."""
    if is_public():
        return [list(ids) for ids in PUBLIC_DECODE_IDS]
    rng, cases = probe_rng(), []
    for _ in range(3):
        ids = [int(i) for i in rng.integers(0, 256 + len(FIXED_MERGES), size=int(rng.integers(5, 25)))]
        for piece in (SPLIT_CHARACTERS[int(rng.integers(0, 3))], SPLIT_CHARACTERS[int(rng.integers(3, 5))]):
            at = int(rng.integers(0, len(ids) + 1))
            ids[at:at] = piece
        cases.append(ids)
    cases[0].insert(0, 32)  # whitespace at both ends: kept, not stripped
    cases[1].append(10)
    return cases


def _decode_probe(cases):
    def probe(decode):
        results = []
        for ids in cases():
            try:
                results.append(type_and_value(decode(list(ids), dict(FIXED_MERGES))))
            except UnicodeDecodeError as error:
                results.append({"type": "UnicodeDecodeError", "value": str(error)})
        return results
    return probe


check_bpe_decode = Check(
    exercise="bpe_decode",
    expects=["a function bpe_decode(ids, merges) -> str"],
    tests=[
        *(Test(f"bpe_decode of {text!r}", _decode_probe(lambda ids=ids: [ids]),
               lambda got, ids=ids: _first_mistake(_decode_mistake, got, [ids]), weight)
          for ids, text, weight in DECODE_SAMPLES),
        Test("bpe_decode of many ids", _decode_probe(_decode_cases),
             lambda got: _first_mistake(_decode_mistake, got, _decode_cases()), 4.0),
    ],
)
