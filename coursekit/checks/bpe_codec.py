"""Checks for notebook 01's BPE `bpe_encode` and `bpe_decode`, both given the same table of merges.

The table is data (learned once by the reference trainer and pasted here), so no trainer is loaded where student
code runs. Small hand-made texts and ids, worth little, name the mistakes; the test that carries each exercise
runs many of them at once, in a grading run drawn from the test's rng.
"""

from __future__ import annotations

import unicodedata

from coursekit.checks.bpe_training import reference_bpe, separate
from coursekit.checks.characters import raised_or_returned, unknown_id_mistake
from coursekit.checks.core import Check, Test, integral, is_public, probe_rng, shown, type_and_value

# Learned by coursekit.bpe.train_bpe_naive on "the theme of the thesis: 'these are the themes' " * 4 + "héllo"
# (vocab_size=276).
FIXED_MERGES = {(104, 101): 256, (116, 256): 257, (32, 257): 258, (109, 101): 259, (258, 259): 260, (32, 39): 261,
                (32, 97): 262, (32, 111): 263, (105, 115): 264, (114, 101): 265, (115, 101): 266, (115, 264): 267,
                (257, 266): 268, (258, 267): 269, (260, 115): 270, (262, 265): 271, (263, 102): 272, (32, 104): 273,
                (108, 108): 274, (169, 274): 275}
# (text, weight). "he has": the merge (104, 101) "he" must win over the later (32, 104) " h", whatever the order
# of the pairs; in "hi, he has his hat" " h" is the most frequent pair but "he" was learned first.
CODEC_SAMPLES = [("the theme", 0.25), ("hello there! he has his hat", 0.25), ("naïve café 🙂", 0.05), ("", 0.05),
                 ("zzz", 0.05), ("oh hi, he has his hat", 0.5), ("he", 0.05),
                 ("the cafe\u0301 ﬁne: he has", 0.1)]  # a decomposed accent and a ligature: no normalisation
COMPANIONS = {"he": "he has"}  # "he" alone cannot tell a loop that stops at two ids from one that merges nothing
PUBLIC_TEXTS = ["the themes of these theses: he has 'héllo' there", "Ah, his hat: He hit him, he is here",
                " the thesis of these themes of the themes is "]
CODEC_WORDS = ["the", "theme", "these", "thesis", "he", "has", "his", "hat", "héllo", "café", "🙂", "are", "of", "s",
               "The", "HE", "ROMEO:"]
EDGES = ["", " ", "  ", "\n", "\t "]  # around the secret texts: leading and trailing whitespace is part of the text
H_WORDS = ["hi", "he", "has", "his", "hat", "him", "oh", "ah", "is", "the"]  # " h" outnumbers "he": order matters
# Learned by coursekit.bpe.train_bpe_naive on "ROMEO:\nhe has, he has;\nthe theme:\n\n" * 5 + "café\n\ncafé\n\n" * 2
# (vocab_size=276): other merges for the same texts (a result kept from a call with other merges is wrong); (10, 10)
# joins "\n\n" across lines, and 271 is all of 'é' (decoding token by token and decoding as ASCII then differ).
LINE_MERGES = {(104, 101): 256, (32, 104): 257, (97, 115): 258, (116, 256): 259, (257, 258): 260, (32, 256): 261,
               (32, 259): 262, (69, 79): 263, (77, 263): 264, (79, 264): 265, (82, 265): 266, (109, 101): 267,
               (262, 267): 268, (97, 102): 269, (99, 269): 270, (195, 169): 271, (270, 271): 272, (10, 10): 273}
MERGE_TABLES = {"fixed": FIXED_MERGES, "lines": LINE_MERGES}
LINE_TEXTS = ["ROMEO:\nhe has the theme,\n\nhe has\n\n", "the café:\n\n\nhe has,\nhe\n"]
LINE_WORDS = ["ROMEO:", "he", "has", "the", "theme", "café", "HE", "\n", "\n\n", ",\n", ":\n\n"]


def _codec_cases() -> list[tuple[str, str]]:
    """The "many texts" of bpe_encode, each with the name of its merge table: public in a notebook, random words
    when grading (two texts of words that start with h, where merging the most frequent pair first differs from
    merging in learning order). The first text comes twice, with other merges the second time, and texts with
    newlines inside and at the end, whose (10, 10) merge joins bytes across lines."""
    if is_public():
        return [*((text, "fixed") for text in PUBLIC_TEXTS), (PUBLIC_TEXTS[0], "lines"),
                *((text, "lines") for text in LINE_TEXTS)]
    rng = probe_rng()
    texts = [str(rng.choice(EDGES[1:])) + " ".join(str(word) for word in rng.choice(CODEC_WORDS, size=int(
        rng.integers(6, 16)))) + str(rng.choice(EDGES)) for _ in range(2)]
    texts += [" ".join(str(word) for word in rng.choice(H_WORDS, size=int(rng.integers(6, 12)))) +
              " oh hi, he has his hat" for _ in range(2)]  # " h" then outnumbers "he", and " he" occurs
    lines = ["".join(str(word) + str(rng.choice([" ", ""])) for word in rng.choice(LINE_WORDS, size=int(
        rng.integers(8, 16)))) + "\n\n" for _ in range(2)]
    return [*((text, "fixed") for text in texts), (texts[0], "lines"), *((text, "lines") for text in lines)]


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


def _by_rank(ids: list[int], merges: dict, pick, limit: int | None = None, keep: int = 1) -> list[int]:
    """Merge by new id (pick = min is right, max is a mistake), at most `limit` times, while more than `keep` ids
    are left."""
    merge_pair, done = reference_bpe().merge_pair, 0
    while (limit is None or done < limit) and len(ids) > keep:
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


# Other orders a bpe_encode may merge in: (what it merges first, (data, merges) -> the ids it ends with, each way
# to break ties)
ORDER_MISTAKES = [
    ("the most frequent pair", lambda data, merges: [_by_count(data, merges, max),
                                                     _by_count(data, merges, max, ties_by_rank=False)]),
    ("the least frequent pair", lambda data, merges: [_by_count(data, merges, min),
                                                      _by_count(data, merges, min, ties_by_rank=False)]),
    ("the pair with the highest new id", lambda data, merges: [_by_rank(data, merges, max)]),
    ("the leftmost pair that is in merges", lambda data, merges: [
        _by_rank(data, merges, lambda found, key: found[0]), _leftmost_once(data, merges)]),
]


def _by_line(text: str, merges: dict) -> list[int]:
    """What encoding each line on its own and joining the lines with byte 10 gives."""
    apply_merges, lines = reference_bpe().apply_merges, text.split("\n")
    return [i for k, line in enumerate(lines) for i in apply_merges(list(line.encode("utf-8")), merges) +
            ([10] if k < len(lines) - 1 else [])]


# Texts changed before encoding: (what was done, text -> the bytes it starts from, what to do instead)
CHANGED_TEXTS = [
    ("the whitespace at the ends of the text was dropped (strip)", lambda text: text.strip().encode("utf-8"),
     "it is part of the text: encode every byte"),
    ("the whitespace at the end of the text was dropped (rstrip)", lambda text: text.rstrip().encode("utf-8"),
     "it is part of the text: encode every byte"),
    ("the newlines at the end of the text were dropped", lambda text: text.rstrip("\n").encode("utf-8"),
     "they are part of the text: encode every byte"),
    ("the whitespace at the start of the text was dropped", lambda text: text.lstrip().encode("utf-8"),
     "it is part of the text: encode every byte"),
    ("the text was lowercased", lambda text: text.lower().encode("utf-8"), "encode the text as it is"),
    *((f"the text was normalised (unicodedata.normalize('{form}', text))",
       lambda text, form=form: unicodedata.normalize(form, text).encode("utf-8"),
       "encode its raw UTF-8 bytes as they are: 'e\\u0301' (an e and a combining accent) is 3 bytes, 'é' 2, and "
       "'ﬁ' is not 'fi'") for form in ("NFC", "NFKC", "NFD", "NFKD")),
    ("the text was encoded as Latin-1", lambda text: text.encode("latin-1", errors="replace"),
     "start from its UTF-8 bytes, list(text.encode('utf-8'))"),
    ("the bytes of the non-ASCII characters are missing or replaced", lambda text: text.encode("ascii", "ignore"),
     "encode with UTF-8, which gives every character its bytes"),
    ("the bytes of the non-ASCII characters are missing or replaced", lambda text: text.encode("ascii", "replace"),
     "encode with UTF-8, which gives every character its bytes"),
]


def _vocab(merges: dict) -> dict[int, bytes]:
    return reference_bpe().BPETokenizer(merges).vocab  # id -> its bytes


def _encode_mistake(got, text: str, table: str = "fixed", others=()) -> str | None:
    """What is wrong with bpe_encode's result on (text, the merge table named `table`); `others` are the other
    (text, table) cases of the same probe, whose answers a result kept between calls would repeat."""
    bpe, merges = reference_bpe(), MERGE_TABLES[table]
    data = list(text.encode("utf-8"))
    expected = bpe.apply_merges(data, merges)
    if got["merges_changed"]:
        return (f"bpe_encode({text!r}, merges) changed the merges it was given (entries removed or replaced): later "
                f"cells encode other texts with the same merges, so read the dict and leave it as it is")
    got = got["result"]
    if got["type"] != "list":
        return f"bpe_encode should return a list of ints, got a {got['type']}"
    ids = got["value"]
    if ids is not None and not all(integral(i) for i in ids):
        return f"bpe_encode should return a list of ints, got {shown(ids)}"
    if ids == expected:
        return None
    said = f"bpe_encode({text!r}) should be {shown(expected)}, got {shown(ids)}"
    other_tables = [name for name in MERGE_TABLES if name != table and ids == bpe.apply_merges(
        data, MERGE_TABLES[name])]
    kept = [other for other, other_table in others if (other, other_table) != (text, table) and
            bpe.apply_merges(list(other.encode("utf-8")), MERGE_TABLES[other_table]) == ids]
    if other_tables or kept:
        return (f"{said}: that is what other merges give (those of an earlier call): encode with the merges given "
                f"to this call, every call (no cache keyed on the text alone, no global merges)")
    if _by_line(text, merges) == ids and "\n" in text:
        return (f"{said}: each line was encoded on its own and the lines joined with byte 10, but merges join "
                f"bytes across lines (here (10, 10), two newlines): encode the text's bytes as one list")
    for what, start, instead in CHANGED_TEXTS:
        if list(start(text)) != data and ids == bpe.apply_merges(list(start(text)), merges):
            return f"{said}: {what}; {instead}"
    if ids == data:
        return (f"bpe_encode({text!r}) returned the raw bytes: no merge was applied. Pick the pair to merge by its "
                f"merge id (the earliest learned, the lowest new id; pairs in no merge never win), not "
                f"the text's most frequent pair, which may be in no merge; stop only when no pair is in merges. "
                f"(Encoding each character on its own gives this too: merges join bytes across characters, so "
                f"encode the text's bytes as one list)")
    if ids == bpe.apply_merges(data, {pair: new_id for pair, new_id in merges.items() if max(pair) <= 256}):
        return (f"{said}: no merge of an id above 256 (an earlier merge's) was applied. Were ids compared with is? "
                f"It holds only for one int object (Python shares the objects of -5..256 alone), and the ids in "
                f"merges' pairs are other objects than its new ids: compare ids with ==, not is")
    if ids == [i for char in text for i in bpe.apply_merges(list(char.encode("utf-8")), merges)]:
        return (f"{said}: each character was encoded on its own, but merges join bytes across characters "
                f"('t' and 'h' into 'th'): encode the text's bytes as one list, list(text.encode('utf-8'))")
    if ids == bpe.apply_merges([ord(char) for char in text], merges):
        return (f"{said}: start from the UTF-8 bytes, list(text.encode('utf-8')), not the characters' code "
                f"points (ord)")
    foreign = [i for i in ids if not 0 <= i < 256 and i not in merges.values()]
    if foreign:
        return (f"{said}: {foreign[0]} is no token of the merges given (their new ids are {min(merges.values())}-"
                f"{max(merges.values())}): encode with the merges argument, not the notebook's merges or a table "
                f"from an earlier call")
    spelled = b"".join(_vocab(merges)[i] for i in ids)
    if spelled != bytes(data):
        return (f"{said}: with the merges given, your ids spell {spelled.decode('utf-8', 'replace')!r}, not the "
                f"text: every byte of the text must be in the ids, and each merged pair replaced by its new id in "
                f"these merges (the merges argument, not the notebook's merges)")
    explained = [what for what, variant in ORDER_MISTAKES if ids in variant(data, merges)]
    if explained:
        also = f" (or {' first, or '.join(explained[1:])} first: on this text they give the same)" \
            if explained[1:] else ""
        return (f"{said}: you merged {explained[0]} first{also}; bpe_encode must apply the merges in the order they "
                f"were learned: always the adjacent pair with the lowest new id (read about min's key argument), "
                f"however often it occurs and wherever it is")
    if isinstance(ids, list) and len(ids) > len(expected) and _by_rank(data, merges, min, 1) == ids:
        return f"{said}: only one merge was applied; keep merging (a while loop) until no adjacent pair is in merges"
    return (f"{said}: apply the merges in the order they were learned: repeatedly merge the adjacent pair with the "
            f"lowest new id (merges[pair]), until no adjacent pair is in merges (a merge can make a new pair that "
            f"is in merges)")


def _encode_probe(cases):
    def probe(encode):
        results = []
        for text, table in cases():
            given = {separate(pair): separate([new_id])[0] for pair, new_id in MERGE_TABLES[table].items()}
            results.append({"result": type_and_value(encode(text, given)),
                            "merges_changed": given != MERGE_TABLES[table]})
        return results
    return probe


def _encode_cases_mistake(got: list, cases) -> str | None:
    cases = cases()
    apply_merges = reference_bpe().apply_merges
    stopped = [_by_rank(list(text.encode("utf-8")), MERGE_TABLES[table], min, keep=2) for text, table in cases]
    if all(result["result"]["value"] == ids for result, ids in zip(got, stopped)):
        for (text, table), ids in zip(cases, stopped):
            expected = apply_merges(list(text.encode("utf-8")), MERGE_TABLES[table])
            if ids != expected:
                return (f"bpe_encode({text!r}) should be {shown(expected)}, got {shown(ids)}: the loop stopped with "
                        f"two ids left that a merge joins; a pair needs two ids, so keep merging while two or more "
                        f"are left")
    return next(filter(None, (_encode_mistake(result, text, table, cases)
                              for result, (text, table) in zip(got, cases))), None)


def _sample_cases(text: str) -> list[tuple[str, str]]:
    return [(text, "fixed")] + ([(COMPANIONS[text], "fixed")] if text in COMPANIONS else [])


check_bpe_encode = Check(
    exercise="bpe_encode",
    expects=["a function bpe_encode(text, merges) -> list[int]"],
    tests=[
        *(Test(f"bpe_encode({text!r})", _encode_probe(lambda text=text: _sample_cases(text)),
               lambda got, text=text: _encode_cases_mistake(got, lambda: _sample_cases(text)), weight)
          for text, weight in CODEC_SAMPLES),
        Test("bpe_encode of many texts, the same text with other merges, newlines inside and at the end",
             _encode_probe(_codec_cases), lambda got: _encode_cases_mistake(got, _codec_cases), 4.0),
    ],
)

# ---------------------------------------------------------------- bpe_decode


def _decode_text(ids: list[int], merges: dict = FIXED_MERGES) -> str:
    vocab = _vocab(merges)
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def _decode_mistake(got, ids: list[int], table: str = "fixed") -> str | None:
    merges = MERGE_TABLES[table]
    expected = _decode_text(ids, merges)
    if got.get("ids_changed") or got.get("merges_changed"):
        which = "list of ids" if got.get("ids_changed") else "merges"
        return (f"bpe_decode({shown(ids)}, merges) changed the {which} it was given: later cells use the same "
                f"{which} again, so read it and leave it as it is")
    got = got["result"]
    if got["type"] == "UnicodeDecodeError":
        return (f"bpe_decode({shown(ids)}) crashed with UnicodeDecodeError: these bytes are not valid UTF-8 on "
                f"their own; decode with errors='replace' so they become '\\ufffd'")
    if got["type"] == "bytes" or got["type"] == "list":
        return "bpe_decode should return a str: join the bytes, then .decode('utf-8', errors='replace')"
    if got["type"] != "str":
        return f"bpe_decode should return a str, got a {got['type']}"
    if got["value"] == expected:
        return None
    said = f"bpe_decode({shown(ids)}) should be {expected!r}, got {got['value']!r}"
    vocab = _vocab(merges)
    token_bytes = [vocab.get(i, b"") for i in ids]
    joined = b"".join(token_bytes)
    if any(set(ids) <= set(_vocab(other)) and got["value"] == _decode_text(ids, other)
           for name, other in MERGE_TABLES.items() if name != table):
        return (f"{said}: that is what other merges give (those of an earlier call): build the tokens' bytes from "
                f"the merges given to this call, every call")
    codec = next((codec for codec in ("ascii", "latin-1", "cp1252", "utf-16")
                  if got["value"] == joined.decode(codec, errors="replace")), None)
    if got["value"] == "".join(token.decode("utf-8", errors="replace") for token in token_bytes):
        also = f" (or the bytes were decoded as {codec}: on these ids the two look alike)" if codec else ""
        return (f"{said}: a character's bytes can be split over several tokens, so join all the bytes first and "
                f"decode once, as UTF-8{also}")
    if codec:
        return (f"{said}: the bytes were decoded as {codec}, but BPE's bytes are UTF-8: decode them with "
                f"'utf-8' (errors='replace')")
    if got["value"] == joined.decode("utf-8", errors="ignore"):
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


def _decode_cases() -> list[tuple[list[int], str]]:
    """The "many ids", each with the name of its merge table: public in a notebook, random ids of the vocabulary
    when grading, each list with a character whose bytes are split over tokens and bytes that are not valid UTF-8
    on their own; then the first ids again with other merges (a vocabulary kept from the first call is wrong)."""
    if is_public():
        cases = [list(ids) for ids in PUBLIC_DECODE_IDS]
    else:
        rng, cases = probe_rng(), []
        for _ in range(3):
            ids = [int(i) for i in rng.integers(0, 256 + len(FIXED_MERGES), size=int(rng.integers(5, 25)))]
            for piece in (SPLIT_CHARACTERS[int(rng.integers(0, 3))], SPLIT_CHARACTERS[int(rng.integers(3, 5))]):
                at = int(rng.integers(0, len(ids) + 1))
                ids[at:at] = piece
            cases.append(ids)
        cases[0].insert(0, 32)  # whitespace at both ends: kept, not stripped
        cases[1].append(10)
    again = [i for i in cases[0] if i < 256 + len(LINE_MERGES)] + [272, 273, 271]  # ids of both tables
    return [*((ids, "fixed") for ids in cases), (again, "lines")]


def _decode_probe(cases):
    def probe(decode):
        results = []
        for ids, table in cases():
            given, merges = list(ids), dict(MERGE_TABLES[table])
            try:
                result = type_and_value(decode(given, merges))
            except UnicodeDecodeError as error:
                result = {"type": "UnicodeDecodeError", "value": str(error)}
            results.append({"result": result, "ids_changed": given != ids,
                            "merges_changed": merges != MERGE_TABLES[table]})
        return results
    return probe


def _decode_cases_mistake(got: list, cases) -> str | None:
    return next(filter(None, (_decode_mistake(result, ids, table) for result, (ids, table) in zip(got, cases()))),
                None)


def _unknown_bpe_id_case() -> tuple[list[int], int]:
    """(ids with one id that is neither a byte nor a merge's new id, that id)."""
    unknown = 256 + len(FIXED_MERGES)
    if is_public():
        return [257, unknown, 260], unknown
    rng = probe_rng()
    unknown = int(rng.choice([unknown, unknown + 1, 300, 1000]))
    return [int(i) for i in rng.integers(0, 256 + len(FIXED_MERGES), size=3)] + [unknown], unknown


def _unknown_bpe_id_mistake(result) -> str | None:
    ids, unknown = _unknown_bpe_id_case()
    return unknown_id_mistake(result, f"bpe_decode({ids}, merges)", unknown,
                              f"bytes 0-255 and the merges' new ids 256-{255 + len(FIXED_MERGES)}")


check_bpe_decode = Check(
    exercise="bpe_decode",
    expects=["a function bpe_decode(ids, merges) -> str"],
    tests=[
        *(Test(f"bpe_decode of {text!r}", _decode_probe(lambda ids=ids: [(ids, "fixed")]),
               lambda got, ids=ids: _decode_cases_mistake(got, lambda: [(ids, "fixed")]), weight)
          for ids, text, weight in DECODE_SAMPLES),
        Test("bpe_decode of many ids, and of ids with other merges", _decode_probe(_decode_cases),
             lambda got: _decode_cases_mistake(got, _decode_cases), 4.0),
        Test("an unknown id raises an error", lambda decode: raised_or_returned(
            decode, _unknown_bpe_id_case()[0], dict(FIXED_MERGES)), _unknown_bpe_id_mistake, 0.1,
             needs_right_outputs=True),
    ],
)
