"""Checks for the character tokenizer: `chars`, `encode` and `decode` (notebooks 01, 02 and 04 share them)."""

from __future__ import annotations

from functools import lru_cache

import torch

from coursekit import data
from coursekit.checks.core import Check, Test, describe, type_and_value


@lru_cache(maxsize=1)
def corpus_chars() -> list[str]:
    return sorted(set(data.read_text("tinyshakespeare")))


def _char_ids(text: str) -> list[int]:
    index = {char: i for i, char in enumerate(corpus_chars())}
    return [index[char] for char in text]


def _chars_view(chars) -> dict:
    """What the chars judges look at: the type and, for a list, its items without repeats (a list of every
    character of the text would be a million items) and whether any item repeated."""
    if type(chars) is not list:
        return {"type": type(chars).__name__, "value": None, "repeats": False}
    try:
        unique = list(dict.fromkeys(chars))
    except TypeError:  # an unhashable item: _chars_is_list names it
        unique = chars
    return {"type": "list", "value": type_and_value(unique)["value"], "repeats": len(unique) != len(chars)}


def _chars_is_list(result):
    if result["type"] == "str":
        return "chars should be a list of characters (e.g. sorted(set(text))), not one string"
    if result["type"] != "list":
        return f"chars should be a list of single characters, got a {result['type']}"
    if result["value"] is None:
        return "chars should be a list of single characters, but some items are not even plain values"
    bad = [item for item in result["value"] if not (isinstance(item, str) and len(item) == 1)]
    if bad:
        return f"every item of chars should be a single character; found {bad[0]!r}"
    return None


def _chars_complete(result):
    if _chars_is_list(result):  # the grader runs every judge: don't compare what is not a list of characters
        return f"fix this first: {_chars_is_list(result)}"
    got = result["value"]
    expected = corpus_chars()
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected), key=repr)
    if missing:
        hint = " (hint: '\\n' and ' ' count)" if {"\n", " "} & set(missing) else ""
        return f"chars is missing {len(missing)} character(s) of the text, e.g. {missing[:3]}{hint}"
    if extra:
        return f"chars has characters that are not in the text: {extra[:3]}"
    if result["repeats"]:
        return "chars has duplicates: each character should appear once (use set(text))"
    return None


def _chars_sorted(result):
    if _chars_is_list(result):
        return f"fix this first: {_chars_is_list(result)}"
    got = result["value"]
    if got != sorted(got):
        return "chars should be sorted, so ids do not depend on set order: use sorted(set(text))"
    return None


check_chars = Check(
    exercise="chars",
    expects=["the sorted list of unique characters of the text"],
    accepts=[lambda value: True],
    tests=[
        Test("chars is a list of single characters", _chars_view, _chars_is_list),
        Test("chars holds every character of the text once", _chars_view, _chars_complete),
        Test("chars is sorted", _chars_view, _chars_sorted),
    ],
)

ENCODE_SAMPLES = ["hello", "First Citizen:\nBefore we proceed any further, hear me speak.", ""]
SAMPLE_WEIGHTS = [2.0, 2.0, 0.1]  # the empty text is an edge case
UNKNOWN_CHARACTER = "€"
TENSOR_SAMPLE = "hi there"  # decode must take a 1-D tensor of ids too (later notebooks pass model output)


def _ids_mistake(got, expected: list[int], text: str) -> str | None:
    if got["type"] != "list" or got["value"] is None:
        return f"encode should return a list of ints, got a {got['type']} (hint: [stoi[c] for c in text])"
    ids = got["value"]
    if ids == expected:
        return None
    if ids == [i + 1 for i in expected]:
        return f"the ids are shifted by one: ids start at 0 (chars[0] is {corpus_chars()[0]!r}, id 0)"
    if ids == [ord(c) for c in text]:
        return "you returned Unicode code points (ord); use each character's position in chars instead"
    if _one_id_per_char(text, ids):
        return (f"each character gets its own id, but not its position in the sorted chars (encode({text!r}) should "
                f"be {expected[:12]}, got {ids[:12]}): build stoi from chars = sorted(set(text)), not from a set")
    return f"encode({text!r}) should be {expected[:12]}, got {ids[:12]}"


def _one_id_per_char(text: str, ids: list) -> bool:
    """True when ids could come from *some* one-to-one table character -> int (e.g. an unsorted vocabulary)."""
    if len(ids) != len(text) or not all(type(i) is int for i in ids):
        return False
    table = dict(zip(text, ids))
    return len(set(table.values())) == len(table) and [table[char] for char in text] == ids


def _encode_probe(text):
    return lambda encode: type_and_value(encode(text))


def _raises_naming(result) -> str | None:
    if result.get("raised") is None:
        return (f"encode({'hi' + UNKNOWN_CHARACTER!r}) should raise an error because {UNKNOWN_CHARACTER!r} is "
                f"not in the vocabulary; it returned {result.get('returned')}")
    if result["raised"] == "NameError":  # a bug of its own, not an error about the character
        return f"encode raised NameError: {result['message']}: define that name in an earlier cell and run it"
    if UNKNOWN_CHARACTER not in result["message"]:
        return (f"the error for an unknown character should name it ({UNKNOWN_CHARACTER!r}) so the user knows "
                f"what to fix; your message was: {result['raised']}: {result['message']}")
    if result["raised"] == "KeyError" and result["message"].strip("'\"") == UNKNOWN_CHARACTER:
        return (f"encode raised a bare KeyError: {result['message']} from the dictionary lookup, which does not say "
                f"what went wrong; check `char in stoi` first and raise your own ValueError, e.g. "
                f"ValueError(f\"character {{char!r}} is not in the vocabulary\")")
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
        *(Test(f"encode({text!r})", _encode_probe(text), lambda got, text=text: _ids_mistake(got, _char_ids(text), text),
               weight) for text, weight in zip(ENCODE_SAMPLES, SAMPLE_WEIGHTS)),
        Test("an unknown character raises an error naming it", _encode_unknown, _raises_naming, 0.5),
    ],
)


def _decode_mistake(got, text: str) -> str | None:
    if got["type"] == "list":
        return "decode should return one string: join the characters with ''.join(...)"
    if got["type"] != "str":
        return f"decode should return a str, got a {got['type']}"
    if got["value"] != text:
        ids, chars = _char_ids(text), corpus_chars()
        if text and got["value"] == " ".join(text):
            return "decode put a space between the characters: join them with ''.join(...), not ' '.join(...)"
        if text and got["value"] == "".join(chr(i) for i in ids):
            return "you used chr(id), which reads ids as Unicode code points; look each id up in itos (chars[id])"
        for shift in (1, -1):
            if text and got["value"] == "".join(chars[(i - shift) % len(chars)] for i in ids):
                return "the characters are off by one position: itos should map i to chars[i] (ids start at 0)"
        return f"decode(ids of {text!r}) should give back {text!r}, got {got['value']!r}"
    return None


def _decode_tensor(decode) -> dict:
    try:
        return type_and_value(decode(torch.tensor(_char_ids(TENSOR_SAMPLE))))
    except Exception as error:
        return {"raised": f"{type(error).__name__}: {error}"}


def _decode_tensor_mistake(got) -> str | None:
    if "raised" in got:
        return (f"decode(torch.tensor(ids)) raised {got['raised']}: the elements of a tensor are 0-d tensors, "
                f"not ints, so they are not keys of itos; look each one up as itos[int(i)]")
    return _decode_mistake(got, TENSOR_SAMPLE)


check_decode = Check(
    exercise="decode",
    expects=["a function decode(ids) -> str"],
    tests=[
        *(Test(f"decode(ids of {text!r})", lambda decode, text=text: type_and_value(decode(_char_ids(text))),
               lambda got, text=text: _decode_mistake(got, text), weight)
          for text, weight in zip(ENCODE_SAMPLES, SAMPLE_WEIGHTS)),
        Test(f"decode(a 1-D tensor of the ids of {TENSOR_SAMPLE!r})", _decode_tensor, _decode_tensor_mistake, 1.0),
    ],
)
