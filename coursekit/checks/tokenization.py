"""Checks for notebook 01 (tokenization); chars/encode/decode are shared with notebooks 02 and 04."""

from __future__ import annotations

import json
from functools import lru_cache

from coursekit import data
from coursekit.bpe import apply_merges, merge_pair, pair_counts, train_bpe_naive
from coursekit.checks.core import Check, Test, describe

# ---------------------------------------------------------------- characters


@lru_cache(maxsize=1)
def corpus_chars() -> list[str]:
    return sorted(set(data.read_text("tinyshakespeare")))


def _char_ids(text: str) -> list[int]:
    index = {char: i for i, char in enumerate(corpus_chars())}
    return [index[char] for char in text]


def _kind(value) -> dict:
    """A probe's view of a returned value: its type name and, when plain enough, the value itself."""
    plain = isinstance(value, (list, tuple, str, int, float, bool, type(None)))
    return {"type": type(value).__name__, "value": list(value) if isinstance(value, tuple) else value if plain else None}


def _chars_is_list(result):
    if result["type"] == "str":
        return "chars should be a list of characters (e.g. sorted(set(text))), not one string"
    if result["type"] != "list":
        return f"chars should be a list of single characters, got a {result['type']}"
    bad = [item for item in result["value"] if not (isinstance(item, str) and len(item) == 1)]
    if bad:
        return f"every item of chars should be a single character; found {bad[0]!r}"
    return None


def _chars_complete(result):
    got = result["value"] if isinstance(result["value"], list) else []
    expected = corpus_chars()
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected), key=repr)
    if missing:
        return f"chars is missing {len(missing)} character(s) of the text, e.g. {missing[:3]} (hint: '\\n' and ' ' count)"
    if extra:
        return f"chars has characters that are not in the text: {extra[:3]}"
    if len(got) != len(set(got)):
        return "chars has duplicates: each character should appear once (use set(text))"
    return None


def _chars_sorted(result):
    got = result["value"] if isinstance(result["value"], list) else []
    if got != sorted(got):
        return "chars should be sorted, so ids do not depend on set order: use sorted(set(text))"
    return None


check_chars = Check(
    exercise="chars",
    expects=["the sorted list of unique characters of the text"],
    accepts=[lambda value: True],
    tests=[
        Test("chars is a list of single characters", lambda chars: _kind(chars), _chars_is_list),
        Test("chars holds every character of the text once", lambda chars: _kind(chars), _chars_complete),
        Test("chars is sorted", lambda chars: _kind(chars), _chars_sorted),
    ],
)

ENCODE_SAMPLES = ["hello", "First Citizen:\nBefore we proceed any further, hear me speak.", ""]
UNKNOWN_CHARACTER = "€"


def _ids_mistake(got, expected: list[int], text: str) -> str | None:
    if got["type"] != "list":
        return f"encode should return a list of ints, got a {got['type']} (hint: [stoi[c] for c in text])"
    ids = got["value"]
    if ids == expected:
        return None
    if ids == [i + 1 for i in expected]:
        return f"the ids are shifted by one: ids start at 0 (chars[0] is {corpus_chars()[0]!r}, id 0)"
    if ids == [ord(c) for c in text]:
        return "you returned Unicode code points (ord); use each character's position in chars instead"
    return f"encode({text!r}) should be {expected[:12]}, got {ids[:12]}"


def _encode_probe(text):
    return lambda encode: _kind(encode(text))


def _raises_naming(result) -> str | None:
    if result.get("raised") is None:
        return (f"encode({'hi' + UNKNOWN_CHARACTER!r}) should raise an error because {UNKNOWN_CHARACTER!r} is "
                f"not in the vocabulary; it returned {result.get('returned')!r}")
    if UNKNOWN_CHARACTER not in result["message"]:
        return (f"the error for an unknown character should name it ({UNKNOWN_CHARACTER!r}) so the user knows "
                f"what to fix; your message was: {result['raised']}: {result['message']}")
    return None


def _encode_unknown(encode) -> dict:
    try:
        returned = encode("hi" + UNKNOWN_CHARACTER)
    except Exception as error:  # any error type is fine, as long as it names the character
        return {"raised": type(error).__name__, "message": str(error)}
    return {"raised": None, "returned": describe(returned)}


check_encode = Check(
    exercise="encode",
    expects=["a function encode(text) -> list[int]"],
    tests=[
        *(Test(f"encode({text!r})", _encode_probe(text), lambda got, text=text: _ids_mistake(got, _char_ids(text), text))
          for text in ENCODE_SAMPLES),
        Test("an unknown character raises an error naming it", _encode_unknown, _raises_naming),
    ],
)


def _decode_mistake(got, text: str) -> str | None:
    if got["type"] == "list":
        return "decode should return one string: join the characters with ''.join(...)"
    if got["type"] != "str":
        return f"decode should return a str, got a {got['type']}"
    if got["value"] != text:
        return f"decode(ids of {text!r}) should give back {text!r}, got {got['value']!r}"
    return None


check_decode = Check(
    exercise="decode",
    expects=["a function decode(ids) -> str"],
    tests=[Test(f"decode(ids of {text!r})", lambda decode, text=text: _kind(decode(_char_ids(text))),
                lambda got, text=text: _decode_mistake(got, text)) for text in ENCODE_SAMPLES],
)

# ---------------------------------------------------------------- byte pair encoding


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
    if counts == pair_counts(ids[:-1]):
        return f"the last pair is missing: for {ids} the pairs are {list(expected)} (zip(ids, ids[1:]))"
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
        return {"result": _kind(out), "input_changed": original != ids}
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
    return f"merge_pair({ids}, {pair}, {new_id}) should be {expected}, got {result['value']}"


check_merge_pair = Check(
    exercise="merge_pair",
    expects=["a function merge_pair(ids, pair, new_id) -> list[int]"],
    tests=[Test(f"merge_pair({ids}, {pair}, {new_id})", _merge_probe(ids, pair, new_id),
                lambda got, case=(ids, pair, new_id): _merge_mistake(got, *case))
           for ids, pair, new_id in MERGE_SAMPLES],
)

TRAIN_TEXT = ("the cat sat on the mat; the dog sat on the log. " * 3) + "héhé 🙂🙂 naïve"
TRAIN_MERGES = 20


def _merges_as_rows(merges) -> dict:
    if not isinstance(merges, dict):
        return {"error": f"train_bpe should return a dict {{(a, b): new_id}}, got {describe(merges)}"}
    rows = []
    for key, value in merges.items():
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
    if len(ids) != TRAIN_MERGES:
        return f"train_bpe(text, vocab_size=256 + {TRAIN_MERGES}) should learn {TRAIN_MERGES} merges, got {len(ids)}"
    if ids != list(range(256, 256 + TRAIN_MERGES)):
        return f"new ids should be 256, 257, ... in the order the merges are learned; got {ids[:5]}..."
    return None


def _train_greedy_mistake(got) -> str | None:
    """Replay the merges: each must be a most frequent pair at its step (any tie-break is fine)."""
    shape = _train_shape_mistake(got)
    if shape:
        return f"fix this first: {shape}"
    ids = list(TRAIN_TEXT.encode("utf-8"))
    known = set(range(256))
    for step, (first, second, new_id) in enumerate(got["rows"]):
        if first not in known or second not in known:
            return (f"merge {step} is {(first, second)}, but ids are bytes 0-255 or earlier merges: train on "
                    f"UTF-8 bytes, ids = list(text.encode('utf-8')), not on characters")
        counts = pair_counts(ids)
        best = max(counts.values())
        count = counts.get((first, second), 0)
        if count < best:
            top = max(counts, key=counts.get)
            return (f"merge {step} was {(first, second)}, which occurs {count} times at that point, but {top} occurs "
                    f"{best} times: after each merge, apply it to the ids and count the pairs again")
        ids = merge_pair(ids, (first, second), new_id)
        known.add(new_id)
    return None


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
CODEC_SAMPLES = ["the theme", "hello there!", "naïve café 🙂", "", "zzz"]


def _encode_mistake(got, text: str) -> str | None:
    expected = apply_merges(text.encode("utf-8"), FIXED_MERGES)
    if got["type"] != "list":
        return f"bpe_encode should return a list of ints, got a {got['type']}"
    if got["value"] == expected:
        return None
    if got["value"] == list(text.encode("utf-8")):
        return f"bpe_encode({text!r}) returned the raw bytes: no merge was applied"
    return (f"bpe_encode({text!r}) should be {expected}, got {got['value']}: apply the merges in the order they "
            f"were learned (lowest new id first), each time to the pair with the lowest id present")


check_bpe_encode = Check(
    exercise="bpe_encode",
    expects=["a function bpe_encode(text, merges) -> list[int]"],
    tests=[Test(f"bpe_encode({text!r})", lambda encode, text=text: _kind(encode(text, dict(FIXED_MERGES))),
                lambda got, text=text: _encode_mistake(got, text)) for text in CODEC_SAMPLES],
)


def _decode_bytes_mistake(got, ids: list[int], expected: str) -> str | None:
    if got["type"] == "bytes" or got["type"] == "list":
        return "bpe_decode should return a str: join the bytes, then .decode('utf-8', errors='replace')"
    if got["type"] != "str":
        return f"bpe_decode should return a str, got a {got['type']}"
    if got["value"] != expected:
        return f"bpe_decode({ids}) should be {expected!r}, got {got['value']!r}"
    return None


def _decode_cases() -> list[tuple[list[int], str]]:
    cases = [(apply_merges(text.encode("utf-8"), FIXED_MERGES), text) for text in CODEC_SAMPLES]
    half_emoji = list("🙂".encode("utf-8"))[:2]
    return cases + [(half_emoji, "\ufffd")]  # invalid UTF-8 must not crash: errors="replace"


def _decode_probe(ids):
    def probe(decode):
        try:
            return _kind(decode(list(ids), dict(FIXED_MERGES)))
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

# ---------------------------------------------------------------- a production tokenizer (Hugging Face)

ROUND_TRIP_TEXTS = ["ROMEO:\nBut, soft! what light through yonder window breaks?", "  two  spaces\tand a tab\n\n",
                    "naïve café, señor", "emoji 🙂👍🏽 and 東京 and 서울", "1234567 3.14 I'm they'll DON'T"]


def _is_hf_tokenizer(value) -> bool:
    return type(value).__name__ == "Tokenizer" and type(value).__module__.startswith("tokenizers")


def _hf_settings(tokenizer) -> dict:
    settings = json.loads(tokenizer.to_str())
    pre_tokenizer = settings.get("pre_tokenizer") or {}
    decoder = settings.get("decoder") or {}
    return {"vocab_size": tokenizer.get_vocab_size(), "model": settings["model"].get("type"),
            "byte_fallback": settings["model"].get("byte_fallback"),
            "pre_tokenizer": pre_tokenizer.get("type"), "decoder": decoder.get("type")}


def _settings_mistake(got) -> str | None:
    if got["model"] != "BPE":
        return f"the model should be models.BPE(...), got {got['model']}"
    if not got["byte_fallback"]:
        return "create the model with models.BPE(byte_fallback=True)"
    if got["pre_tokenizer"] != "ByteLevel":
        return f"set tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(...), got {got['pre_tokenizer']}"
    if got["decoder"] != "ByteLevel":
        return f"set tokenizer.decoder = decoders.ByteLevel() so decode undoes the byte mapping; got {got['decoder']}"
    if got["vocab_size"] != 512:
        return f"train with BpeTrainer(vocab_size=512, ...); the vocabulary has {got['vocab_size']} entries"
    return None


def _round_trips(tokenizer) -> list[list[str]]:
    return [[text, tokenizer.decode(tokenizer.encode(text).ids)] for text in ROUND_TRIP_TEXTS]


def _round_trip_mistake(got) -> str | None:
    for text, back in got:
        if back != text:
            return (f"decode(encode(text)) should give the text back, but {text!r} came back as {back!r}; with a "
                    f"ByteLevel pre-tokenizer (add_prefix_space=False), a ByteLevel decoder and "
                    f"initial_alphabet=pre_tokenizers.ByteLevel.alphabet() every string round-trips")
    return None


def _common_words(tokenizer) -> dict:
    return {word: tokenizer.encode(word).tokens for word in [" the", " and", " to"]}


def _common_words_mistake(got) -> str | None:
    for word, tokens in got.items():
        if len(tokens) != 1:
            return f"{word!r} should be a single token after training on Shakespeare, got {tokens}: was it trained on text?"
    return None


check_hf_tokenizer = Check(
    exercise="hf_tokenizer",
    expects=["a trained tokenizers.Tokenizer"],
    accepts=[_is_hf_tokenizer],
    tests=[
        Test("BPE with byte_fallback, ByteLevel pre-tokenizer and decoder, 512 tokens", _hf_settings,
             _settings_mistake),
        Test("every string round-trips", _round_trips, _round_trip_mistake),
        Test("common words are single tokens", _common_words, _common_words_mistake),
    ],
)

# ---------------------------------------------------------------- GPT-2's tokenizer

GPT2_TEXTS = {
    "Shakespeare": ["First Citizen:\nBefore we proceed any further, hear me speak.",
                    "charmingly anachronistic", "cirkumnavigate circumnavigate"],
    "whitespace": ["a  b   c", "line one\n\nline two\n", "\ttabbed\t\t", "trailing spaces   ", " ", ""],
    "digits and contractions": ["1234567 and 3.14", "I'm sure they'll say DON'T", "it's 2024's best"],
    "accents, emoji and CJK": ["café naïve Ångström", "👍🏽 🇫🇷 👨‍👩‍👧", "東京は晴れ", "안녕하세요 세계"],
}


@lru_cache(maxsize=1)
def _gpt2_reference():
    from tokenizers import ByteLevelBPETokenizer

    return ByteLevelBPETokenizer(str(data.path("gpt2-encoder")), str(data.path("gpt2-merges")))


def _gpt2_mistake(got, texts: list[str]) -> str | None:
    reference = _gpt2_reference()
    for text, ids in zip(texts, got):
        if ids["type"] != "list":
            return f"gpt2_encode should return a list of ints, got a {ids['type']}"
        expected = reference.encode(text).ids
        if ids["value"] != expected:
            tokens = [reference.id_to_token(i) for i in expected]
            return (f"gpt2_encode({text!r}) should be {expected} (tokens {tokens}), got {ids['value']}. Split with "
                    f"the GPT-2 pattern first, map each chunk's UTF-8 bytes through byte_encoder, then merge by rank")
    return None


check_gpt2_encode = Check(
    exercise="gpt2_encode",
    expects=["a function gpt2_encode(text) -> list[int]"],
    tests=[Test(f"gpt2_encode on {group}", lambda encode, texts=texts: [_kind(encode(text)) for text in texts],
                lambda got, texts=texts: _gpt2_mistake(got, texts)) for group, texts in GPT2_TEXTS.items()],
)
