"""Checks for the character tokenizer: `chars`, `encode` and `decode` (notebooks 01, 02 and 04 share them).

The vocabulary is tinyshakespeare's 65 characters, sorted. In a notebook the probes use the hand-made texts and
ids below; in a grading run they use other ones drawn from the test's rng (pieces of the corpus, characters from
anywhere in it, random ids), so an encode that only knows the public answers earns nothing. The probes never build
the vocabulary themselves (that is the exercise): only the judges compute the expected ids and texts.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from coursekit import data
from coursekit.checks.core import Check, Test, describe, integral, is_public, probe_rng, shown, type_and_value


@lru_cache(maxsize=1)
def corpus() -> str:
    return data.read_text("tinyshakespeare")


@lru_cache(maxsize=1)
def corpus_chars() -> list[str]:
    """The answer to the chars exercise: for judges only."""
    return sorted(set(corpus()))


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
        return "chars should be a list of characters, not one string (read about list() of a string)"
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
        return "chars has duplicates: each character should appear once (read about Python's set)"
    return None


def _chars_sorted(result):
    """Sorted *and* complete: the ids of the vocabulary are the positions in sorted(set(text)), nothing less."""
    earlier = _chars_complete(result)
    if earlier:
        return earlier if earlier.startswith("fix this first") else f"fix this first: {earlier}"
    if result["value"] != sorted(result["value"]):
        return ("chars should be sorted, so ids do not depend on the order a set happens to have: read about "
                "Python's sorted()")
    return None


check_chars = Check(
    exercise="chars",
    expects=["the sorted list of unique characters of the text"],
    accepts=[lambda value: True],
    tests=[
        Test("chars is a list of single characters", _chars_view, _chars_is_list, 0.05, needs_right_outputs=True),
        Test("chars holds every character of the text once", _chars_view, _chars_complete, 0.75),
        Test("chars is sorted(set(text))", _chars_view, _chars_sorted, 2.2),
    ],
)

# ---------------------------------------------------------------- the texts and ids the probes use

SHORT_TEXT = "hello"
PASSAGE = " First Citizen:\nBefore we proceed any further, hear me speak.\n"  # spaces and newlines at both ends
# The ids of SHORT_TEXT, PASSAGE and "hi there" in the sorted vocabulary, as data: decode's probes must not encode.
SHORT_IDS = [46, 43, 50, 50, 53]
PASSAGE_IDS = [1, 18, 47, 56, 57, 58, 1, 15, 47, 58, 47, 64, 43, 52, 10, 0, 14, 43, 44, 53, 56, 43, 1, 61, 43, 1, 54,
               56, 53, 41, 43, 43, 42, 1, 39, 52, 63, 1, 44, 59, 56, 58, 46, 43, 56, 6, 1, 46, 43, 39, 56, 1, 51, 43, 1,
               57, 54, 43, 39, 49, 8, 0]
TENSOR_IDS = [1, 46, 47, 1, 58, 46, 43, 56, 43, 0]  # " hi there\n": decode takes a 1-D tensor too (as notebook 02 does)
VOCAB_SIZE = 65
UNKNOWN_CHARACTER = "€"
SECRET_UNKNOWN = "€é\t#@0日🙂"  # none of these is in tinyshakespeare


def _drawn_text(rng, low: int, high: int) -> str:
    """A piece of the corpus, with characters from anywhere in it and whitespace at both ends mixed in."""
    text = corpus()
    length = int(rng.integers(low, high))
    start = int(rng.integers(0, len(text) - length))
    scattered = "".join(text[i] for i in rng.integers(0, len(text), size=length // 3))
    return str(rng.choice([" ", "\n", ""])) + text[start:start + length] + scattered + str(rng.choice([" ", "\n"]))


def short_text() -> str:
    return SHORT_TEXT if is_public() else _drawn_text(probe_rng(), 3, 12)


def passage() -> str:
    return PASSAGE if is_public() else _drawn_text(probe_rng(), 40, 120)


def _drawn_ids(rng, low: int, high: int) -> list[int]:
    """Random ids of the vocabulary with the last one ('z') somewhere and whitespace ('\\n' is 0, ' ' is 1) at
    both ends."""
    ids = [int(i) for i in rng.integers(0, VOCAB_SIZE, size=int(rng.integers(low, high)))]
    ids.insert(int(rng.integers(0, len(ids) + 1)), VOCAB_SIZE - 1)
    return [int(rng.integers(0, 2)), *ids, int(rng.integers(0, 2))]


def short_ids() -> list[int]:
    return list(SHORT_IDS) if is_public() else _drawn_ids(probe_rng(), 3, 10)


def passage_ids() -> list[int]:
    return list(PASSAGE_IDS) if is_public() else _drawn_ids(probe_rng(), 40, 120)


def tensor_ids() -> list[int]:
    return list(TENSOR_IDS) if is_public() else _drawn_ids(probe_rng(), 5, 20)


def unknown_cases() -> list[tuple[str, str]]:
    """[(a text with one character outside the vocabulary, that character)]: one of anywhere, a tab and a carriage
    return (an encode that rewrites whitespace it does not know hides them instead of reporting them)."""
    if is_public():
        return [("a pound of flesh, or" + UNKNOWN_CHARACTER + " in gold", UNKNOWN_CHARACTER),
                ("a pound\tof flesh", "\t"), ("of flesh,\r\nor gold", "\r")]
    rng, cases = probe_rng(), []
    for unknown in (str(rng.choice(list(SECRET_UNKNOWN))), "\t", "\r"):
        text = _drawn_text(rng, 3, 15)
        at = int(rng.integers(0, len(text) + 1))
        cases.append((text[:at] + unknown + ("\n" if unknown == "\r" else "") + text[at:], unknown))
    return cases

# ---------------------------------------------------------------- encode


def _ids_mistake(got, text: str, others=()) -> str | None:
    expected = _char_ids(text)
    if got["type"] != "list" or got["value"] is None:
        return f"encode should return a list of ints, got a {got['type']} (look each character up in stoi)"
    ids = got["value"]
    if not all(integral(i) for i in ids):
        return f"encode should return a list of ints (ids), got {shown(ids)}"
    if ids == expected:
        return None
    kept = [other for other in others if other != text and _char_ids(other) == ids]
    if kept:
        return (f"encode({text!r}) returned the ids of another text given in another call, {kept[0]!r}: encode "
                f"the text given each time (keep nothing between calls, e.g. no cache keyed on len(text))")
    if ids == [i + 1 for i in expected]:
        return f"the ids are shifted by one: ids start at 0 (chars[0] is {corpus_chars()[0]!r}, id 0)"
    if ids == [ord(c) for c in text] or ids == list(text.encode("utf-8")):
        return ("you returned Unicode code points (ord) or UTF-8 bytes; use each character's position in chars "
                "instead")
    if _one_id_per_char(text, ids):
        return (f"each character gets its own id, but not its position in the sorted chars (encode({text!r}) should "
                f"be {shown(expected)}, got {shown(ids)}): build stoi from the sorted chars, not from a set")
    if len(ids) != len(expected):
        return (f"encode({text!r}) should give one id per character ({len(expected)} ids), got {len(ids)}: "
                f"{shown(ids)}; keep every character, spaces and newlines too")
    return f"encode({text!r}) should be {shown(expected)}, got {shown(ids)}"


def _one_id_per_char(text: str, ids: list) -> bool:
    """True when ids could come from *some* one-to-one table character -> int (e.g. an unsorted vocabulary)."""
    if len(ids) != len(text) or not all(type(i) is int for i in ids):
        return False
    table = dict(zip(text, ids))
    return len(set(table.values())) == len(table) and [table[char] for char in text] == ids


def _encode_test(name: str, texts, weight: float) -> Test:
    """encode on each of texts() (two of the same length: a result kept from an earlier call is wrong)."""
    return Test(name, lambda encode: [type_and_value(encode(text)) for text in texts()],
                lambda got: next(filter(None, (_ids_mistake(result, text, texts())
                                               for result, text in zip(got, texts()))), None), weight)


def raised_or_returned(function, *args) -> dict:
    """A probe's view of a call that should raise: the error's type and message, or a description of what came back."""
    try:
        returned = function(*args)
    except Exception as error:  # any error type is fine, as long as its message names the culprit
        return {"raised": type(error).__name__, "message": str(error)}
    return {"raised": None, "returned": describe(returned)}


def _encode_unknown(encode) -> list[dict]:
    return [raised_or_returned(encode, text) for text, _ in unknown_cases()]


def _raises_naming(results) -> str | None:
    return next(filter(None, (_raises_naming_one(result, *case) for result, case in zip(results, unknown_cases()))),
                None)


def _raises_naming_one(result, text: str, unknown: str) -> str | None:
    if result.get("raised") is None:
        return (f"encode({text!r}) should raise an error because {unknown!r} is not in the vocabulary; it "
                f"returned {result.get('returned')}")
    if result["raised"] == "NameError":  # a bug of its own, not an error about the character
        return f"encode raised NameError: {result['message']}: define that name in an earlier cell and run it"
    if not _names(result["message"], unknown):
        return (f"the error for an unknown character should name it ({unknown!r}) so the user knows what to fix; "
                f"your message was: {result['raised']}: {result['message']}")
    if not _names(_without_quoting(result["message"], text), unknown):
        return (f"the error for encode({text!r}) names the character only by quoting the whole text; in a long "
                f"text that hides which character is at fault: name the character itself ({unknown!r})")
    if result["raised"] == "KeyError" and result["message"].strip("'\"") in (unknown, repr(unknown)[1:-1]):
        return (f"encode raised a bare KeyError: {result['message']} from the dictionary lookup, which does not say "
                f"what went wrong; check whether each character is in stoi first and raise your own error (a "
                f"ValueError, say) whose message says which character is not in the vocabulary")
    return None


def _names(message: str, char: str) -> bool:
    return char in message or repr(char)[1:-1] in message  # '\t' shown by {char!r}


def _without_quoting(message: str, text: str) -> str:
    """The message with every quotation of the whole text taken out."""
    for quoted in (repr(text), repr(text)[1:-1], text):
        message = message.replace(quoted, "")
    return message


check_encode = Check(
    exercise="encode",
    expects=["a function encode(text) -> list[int]"],
    tests=[
        _encode_test("encode of a word", lambda: [short_text()], 1.0),
        _encode_test("encode of a passage with spaces, newlines and punctuation",
                     lambda: [passage(), passage()[::-1]], 3.0),
        _encode_test("encode('')", lambda: [""], 0.1),
        Test("an unknown character raises an error naming it", _encode_unknown, _raises_naming, 0.4,
             needs_right_outputs=True),
    ],
)

# ---------------------------------------------------------------- decode


def _decode_mistake(got, ids: list[int], others=()) -> str | None:
    chars = corpus_chars()
    text = "".join(chars[i] for i in ids)
    if "raised" in got and got.get("as_tensor", True):
        return (f"decode(torch.tensor(ids)) raised {got['raised']}: the elements of a tensor are 0-d tensors, "
                f"not ints, so they are not keys of itos; look each one up as itos[int(i)]")
    if "raised" in got:
        return (f"decode({shown(ids)}) raised {got['raised']}: ids may be a list of ints or a 1-D tensor, so handle "
                f"both: loop over ids and look each one up as itos[int(i)], with no tensor-only method such as "
                f".tolist()")
    if got["type"] == "list":
        return "decode should return one string: join the characters (read about str.join)"
    if got["type"] != "str":
        return f"decode should return a str, got a {got['type']}"
    if got["value"] == text:
        return None
    kept = [other for other in others if other != ids and "".join(chars[i] for i in other) == got["value"]]
    if kept:
        return (f"decode({shown(ids)}) returned the text of other ids given in another call, {shown(kept[0])}: "
                f"decode the ids given each time (keep nothing between calls, e.g. no cache keyed on len(ids))")
    if text and got["value"] == " ".join(text):
        return "decode put a space between the characters: join them with the empty string '', not ' '"
    if text and got["value"] == "".join(chr(i) for i in ids):
        return "you used chr(id), which reads ids as Unicode code points; look each id up in itos (chars[id])"
    for shift in (1, -1):
        if text and got["value"] == "".join(chars[(i - shift) % len(chars)] for i in ids):
            return "the characters are off by one position: itos should map i to chars[i] (ids start at 0)"
    return f"decode({shown(ids)}) should give back {text!r}, got {got['value']!r}"


def _decode_probe(ids, as_tensor: bool = False):
    def probe(decode):
        try:
            return [type_and_value(decode(torch.tensor(case) if as_tensor else list(case))) for case in ids()]
        except NotImplementedError:
            raise
        except Exception as error:  # the judge says what ids may be
            return [{"raised": f"{type(error).__name__}: {error}", "as_tensor": as_tensor}]
    return probe


def _decode_test(name: str, ids, weight: float, as_tensor: bool = False) -> Test:
    """decode on each of ids() (lists of ids), as lists or as tensors."""
    return Test(name, _decode_probe(ids, as_tensor), lambda got: next(filter(None, (
        _decode_mistake(result, case, ids()) for result, case in zip(got, ids()))), None), weight)


def unknown_id_case() -> tuple[list[int], int]:
    """(ids with one id outside the vocabulary, that id)."""
    if is_public():
        return [46, 43, VOCAB_SIZE, 53], VOCAB_SIZE
    rng = probe_rng()
    ids, unknown = _drawn_ids(rng, 3, 10), int(rng.choice([VOCAB_SIZE, VOCAB_SIZE + 1, 100, 1000]))
    ids.insert(int(rng.integers(0, len(ids) + 1)), unknown)
    return ids, unknown


def unknown_id_mistake(result, call: str, unknown: int, known: str) -> str | None:
    """For judges of raised_or_returned data: None when the call raised an error (any error: itos[id] raises a
    KeyError, chars[id] an IndexError), else what is wrong. `known` says which ids there are."""
    if result["raised"] is None:
        return (f"{call} should raise an error because {unknown} is no id of the vocabulary ({known}); it returned "
                f"{result['returned']}: an unknown id is a bug to report, not a character to guess or drop")
    return None


def _raises_for_the_id(result) -> str | None:
    ids, unknown = unknown_id_case()
    return unknown_id_mistake(result, f"decode({ids})", unknown, f"ids run from 0 to {VOCAB_SIZE - 1}")


check_decode = Check(
    exercise="decode",
    expects=["a function decode(ids) -> str"],
    tests=[
        _decode_test("decode of a word's ids", lambda: [short_ids()], 1.0),
        _decode_test("decode of a passage's ids", lambda: [passage_ids(), passage_ids()[::-1]], 3.0),
        _decode_test("decode([])", lambda: [[]], 0.1),
        _decode_test("decode of a 1-D tensor of ids", lambda: [tensor_ids(), tensor_ids()[::-1]], 0.5, as_tensor=True),
        Test("an unknown id raises an error", lambda decode: raised_or_returned(decode, unknown_id_case()[0]),
             _raises_for_the_id, 0.2,
             needs_right_outputs=True),
    ],
)
