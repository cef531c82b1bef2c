"""Checks for notebook 01's production tokenizers: a Hugging Face BPE tokenizer and GPT-2's tokenizer.

The Hugging Face tokenizer is judged from the tokenizer itself. Its probes return nothing but `tokenizer.to_str()`,
the tokenizer's JSON: data, not code. Each judge rebuilds the tokenizer from it in its own process
(tokenizer_json.load, which refuses oversized or unsafe JSON with a message) and runs it on texts it draws itself:
the settings (a BPE model with byte_fallback and 512 entries), the pre-tokenizer's pieces against a
ByteLevel(add_prefix_space=False) one's, round trips through whitespace, accents, emoji and CJK, and single tokens
for common words. Everything is judged by behaviour, not by class names, so a Sequence of one ByteLevel
pre-tokenizer, a normalizer that changes nothing, or a special token pass. A forger can no longer report settings or
round trips: what it hands over is run.

What it could hand over is a JSON written by hand, and what a student could hand over is a tokenizer trained on
part of the text. Both fail the last part: the merges must be the ones BPE learns from the whole corpus. The judge
trains the exercise's tokenizer on all of it (about a second, once per process; training is deterministic) and asks
that at least MERGES_SHARE (95 %) of its 256 merges are among the claimed tokenizer's. Training from lines or from a
file, with a min_frequency or from a list holding the text twice gives the very same merges; a special token takes
the last merge's place (255 of 256); training on chunks of 1,000 characters keeps 254. Training on the first half of
the text keeps 234, on its first 20,000 characters 174, GPT-2's first 256 merges or a vocabulary padded by hand far
fewer.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache

from coursekit import data
from coursekit.checks import tokenizer_json
from coursekit.checks.characters import corpus
from coursekit.checks.core import Check, Test, integral, is_public, probe_rng, shown, type_and_value

# Pieces of text for the secret inputs of a grading run: whitespace runs, accents, emoji, CJK, digits, contractions.
PIECES = ["ROMEO:", "But, soft!", "  two  spaces", "\ttab\t\t", "\n\n", "naïve", "café", "señor", "Ångström",
          "🙂", "👍🏽", "🇫🇷", "東京は晴れ", "서울", "1234567", "3.14", "I'm", "they'll", "DON'T", "it's", "   ", "\r\n"]


def mixed_texts(count: int, public: list[str]) -> list[str]:
    """`public` in a notebook; when grading, `count` texts of random pieces and a piece of Shakespeare, joined by
    random whitespace, so that the answers to the public texts are of no use.

    >>> mixed_texts(2, ["a", "b"])
    ['a', 'b']
    """
    if is_public():
        return list(public)
    rng, text = probe_rng(), corpus()
    texts = []
    for _ in range(count):
        start = int(rng.integers(0, len(text) - 80))
        parts = [*rng.choice(PIECES, size=int(rng.integers(2, 5))), text[start:start + int(rng.integers(10, 80))]]
        rng.shuffle(parts)
        texts.append("".join(str(part) + str(rng.choice(["", " ", "  ", "\n", "\t"])) for part in parts))
    return texts


# ---------------------------------------------------------------- a production tokenizer (Hugging Face)

ROUND_TRIP_TEXTS = ["ROMEO:\nBut, soft! what light through yonder window breaks?", "  two  spaces\tand a tab\n\n",
                    "naïve café, señor", "emoji 🙂👍🏽 and 東京 and 서울", "1234567 3.14 I'm they'll DON'T"]
# In NFC already (an NFC normalizer keeps it), with compatibility characters that NFKC changes: in every run.
COMPATIBILITY_TEXT = "ﬁne ＡＢＣ, café ½"
PRE_TOKENIZER_TEXTS = ["Hello world", "  two  spaces\tand\nlines", "naïve 🙂 they'll 1234"]
MERGES_SHARE = 0.95  # of the exercise's merges that the claimed tokenizer must have (see the module docstring)


def _is_hf_tokenizer(value) -> bool:
    return type(value).__name__ == "Tokenizer" and type(value).__module__.startswith("tokenizers")


def _tokenizer_json(tokenizer) -> str:
    """The probe of every test: the tokenizer itself, as data. The judges rebuild and run it."""
    return tokenizer.to_str()


def _settings_mistake(tokenizer) -> str | None:
    model, vocab_size = tokenizer.model, tokenizer.get_vocab_size()
    if type(model).__name__ != "BPE":
        return f"the model should be models.BPE(...), got {type(model).__name__}"
    if not model.byte_fallback:
        return "create the model with models.BPE(byte_fallback=True)"
    if getattr(model, "dropout", None):
        return (f"the model has dropout={model.dropout:g}: BPE dropout skips merges at random each time a text is "
                f"encoded (a regularisation for training a model), so ' the' is not always one token; create "
                f"models.BPE without dropout")
    if vocab_size != 512:
        untrained = "" if vocab_size else " (train it: tokenizer.train_from_iterator([text], trainer=trainer))"
        return f"train with BpeTrainer(vocab_size=512, ...); the vocabulary has {vocab_size} entries{untrained}"
    return None


def _pre_tokenizer_mistake(tokenizer) -> str | None:
    """The pieces the pre-tokenizer splits texts into, compared with a ByteLevel(add_prefix_space=False) one's:
    behaviour, not class, so pre_tokenizers.Sequence([ByteLevel(...)]) passes too."""
    from tokenizers import pre_tokenizers

    if tokenizer.pre_tokenizer is None:
        return "set tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)"
    wanted = pre_tokenizers.ByteLevel(add_prefix_space=False)
    for text in mixed_texts(3, PRE_TOKENIZER_TEXTS):
        pieces = [piece for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text)]
        expected = [piece for piece, _ in wanted.pre_tokenize_str(text)]
        if pieces != expected:
            if pieces and expected and pieces[0] == "Ġ" + expected[0]:
                return "the pre-tokenizer adds a space in front: use pre_tokenizers.ByteLevel(add_prefix_space=False)"
            return (f"the pre-tokenizer splits {text!r} into {pieces}, a ByteLevel pre-tokenizer into {expected}: "
                    f"use pre_tokenizers.ByteLevel(add_prefix_space=False)")
    return None


def _round_trip_mistake(tokenizer) -> str | None:
    for text in [*mixed_texts(4, ROUND_TRIP_TEXTS), COMPATIBILITY_TEXT]:
        back = tokenizer.decode(tokenizer.encode(text).ids)
        if back != text and back in (unicodedata.normalize("NFKC", text), unicodedata.normalize("NFKD", text)):
            return (f"{text!r} came back as {back!r}: an NFKC (or NFKD) normalizer replaces compatibility "
                    f"characters ('ﬁ' by 'fi', 'Ａ' by 'A'), so decode(encode(text)) is not the text; drop the "
                    f"normalizer (NFC at most, which keeps every character)")
        if back == " " + text:
            return (f"{text!r} came back with a space in front: add_prefix_space=True adds one; use "
                    f"pre_tokenizers.ByteLevel(add_prefix_space=False)")
        lost = sorted(set(text) - set(back))
        if lost and len(back) < len(text):
            return (f"{text!r} came back as {back!r}: characters whose bytes never occur in the training text "
                    f"({''.join(lost)!r}) vanish; give the trainer initial_alphabet=pre_tokenizers.ByteLevel.alphabet()"
                    f" so all 256 bytes are in the vocabulary")
        if back != text:
            return (f"decode(encode(text)) should give the text back, but {text!r} came back as {back!r}; with a "
                    f"ByteLevel pre-tokenizer (add_prefix_space=False), a ByteLevel decoder and "
                    f"initial_alphabet=pre_tokenizers.ByteLevel.alphabet() every string round-trips")
    return None


def _common_words_mistake(tokenizer) -> str | None:
    for word in [" the", " and", " to"]:
        tokens = tokenizer.encode(word).tokens
        longest = max(map(len, tokenizer.get_vocab()), default=0)
        if len(tokens) != 1 and longest <= 3:
            return (f"{word!r} should be a single token after training on Shakespeare, got {tokens}: no token of the "
                    f"vocabulary is longer than {longest} symbols; was the trainer given max_token_length? Leave it "
                    f"out")
        if len(tokens) != 1:
            return (f"{word!r} should be a single token after training on Shakespeare, got {tokens}: was it trained "
                    f"on text?")
    return None


def _merges(tokenizer) -> set[tuple[str, str]]:
    """A tokenizer's merges as pairs of symbols (its JSON spells them "a b" or ["a", "b"], by version)."""
    merges = json.loads(tokenizer.to_str())["model"].get("merges") or []
    return {tuple(merge.split(" ", 1)) if isinstance(merge, str) else tuple(merge) for merge in merges}


@lru_cache(maxsize=1)
def _exercise_merges() -> frozenset[tuple[str, str]]:
    """The merges of exercise 4.1's tokenizer, trained here on the whole corpus (about a second)."""
    from coursekit.course_tokenizer import train_bpe512  # judge side: the reference is never in a sandbox

    return frozenset(_merges(train_bpe512(corpus())))


def _merges_mistake(tokenizer) -> str | None:
    wanted = _exercise_merges()
    shared = len(_merges(tokenizer) & wanted)
    if shared < MERGES_SHARE * len(wanted):
        return (f"only {shared} of the {len(wanted)} merges that BPE learns from the whole of `text` are among your "
                f"tokenizer's merges: train it on all of the text, as it is, with "
                f"tokenizer.train_from_iterator([text], trainer=trainer)")
    return None


# (what the test looks at, the judge's part): each is a small test of its own, and together they are the test that
# carries the exercise (a tokenizer with any one of them wrong is not the byte-level BPE tokenizer asked for).
HF_PARTS = [("BPE with byte_fallback and 512 tokens", _settings_mistake),
            ("the pre-tokenizer works as ByteLevel(add_prefix_space=False)", _pre_tokenizer_mistake),
            ("every string round-trips", _round_trip_mistake),
            ("common words are single tokens", _common_words_mistake),
            ("the merges are those learned from the whole text", _merges_mistake)]


def _first_mistake(tokenizer) -> str | None:
    return next(filter(None, (part(tokenizer) for _, part in HF_PARTS)), None)


def _judging_the_json(part):
    """A judge: rebuild the tokenizer from the probe's JSON, in this process, and run `part` on it."""
    def judge(claim) -> str | None:
        tokenizer = tokenizer_json.load(claim)
        return tokenizer if isinstance(tokenizer, str) else part(tokenizer)
    return judge


check_hf_tokenizer = Check(
    exercise="hf_tokenizer",
    expects=["a trained tokenizers.Tokenizer"],
    accepts=[_is_hf_tokenizer],
    tests=[*(Test(name, _tokenizer_json, _judging_the_json(part), 0.25) for name, part in HF_PARTS),
           Test("a byte-level BPE tokenizer in every respect, on other texts too", _tokenizer_json,
                _judging_the_json(_first_mistake), 4.0)],
)


# ---------------------------------------------------------------- GPT-2's tokenizer

GPT2_TEXTS = {
    "Shakespeare": ["First Citizen:\nBefore we proceed any further, hear me speak.",
                    "charmingly anachronistic", "cirkumnavigate circumnavigate"],
    "whitespace": ["a  b   c", "line one\n\nline two\n", "\ttabbed\t\t", "trailing spaces   ", " ", ""],
    "runs of one character": ["!!!", "eeeee", "0000000 *****", "kkkkk...."],
    "digits and contractions": ["1234567 and 3.14", "I'm sure they'll say DON'T", "it's 2024's best"],
    "accents, emoji and CJK": ["café naïve Ångström", "👍🏽 🇫🇷 👨‍👩‍👧", "東京は晴れ", "안녕하세요 세계"],
    # GPT-2's contractions are lowercase only; no normalisation (a decomposed accent, ligatures, full-width letters,
    # \r, a no-break space stay as they are); chunks of 40 characters and more
    "capitals, unnormalised text and long chunks": ["I'LL GO, O'DONNELL, WE'READ JOHN'STONE", "cafe\u0301 ﬁne… ＡＢＣ",
                                                    "line\r\nfeed\rreturn no\u00a0break",
                                                    "Pneumonoultramicroscopicsilicovolcanoconiosis " + "!" * 45],
}


@lru_cache(maxsize=1)
def _gpt2_reference():
    from tokenizers import ByteLevelBPETokenizer

    return ByteLevelBPETokenizer(str(data.path("gpt2-encoder")), str(data.path("gpt2-merges")))


def _gpt2_probe(texts):
    def probe(encode):
        results = []
        for text in texts():
            try:
                results.append(type_and_value(encode(text)))
            except KeyError as error:  # the usual symptom of a missed step: say which key, then which step
                key = error.args[0] if error.args else None
                results.append({"type": "KeyError", "value": repr(key)})
        return results
    return probe


@lru_cache(maxsize=1)
def _gpt2_encoder():
    from coursekit.gpt2_encoder import GPT2Encoder  # judge side: the reference is never in a sandbox

    return GPT2Encoder.from_files()


def _encoded_in_chunks(chunks: list[str]) -> list[int]:
    """GPT-2's BPE run inside each of these chunks (a split other than GPT-2's, to name it)."""
    from coursekit.bpe import apply_merges

    encoder = _gpt2_encoder()
    return [i for chunk in chunks for i in apply_merges([encoder.byte_ids[b] for b in chunk.encode("utf-8")],
                                                         encoder.merges)]


# GPT-2's pattern with the contractions matched in any case, as cl100k does: "O'DONNELL" -> "O", "'D", "ONNELL".
CASE_INSENSITIVE_CONTRACTIONS = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _key_error_mistake(text: str, got: dict) -> str:
    said = f"gpt2_encode({text!r}) raised KeyError: {got['value']}"
    if got["value"].startswith("("):
        return f"{said}; most pairs have no rank: look ranks up with merge_ranks.get(pair, float('inf'))"
    return (f"{said}; GPT-2's tokens spell every byte with byte_encoder (a space is 'Ġ', a newline 'Ċ'): turn each "
            f"chunk into [byte_encoder[b] for b in chunk.encode('utf-8')] before merging")


def _crosses_chunks(text: str, tokens: list[str]) -> str | None:
    """A token that spans two of GPT-2's chunks (so BPE ran on the whole text), or None."""
    from coursekit.bpe import pretokenize  # judge side: the reference is never in a sandbox

    ends, position = set(), 0
    for chunk in pretokenize(text):
        position += len(chunk.encode("utf-8"))  # a token string has one character per byte
        ends.add(position)
    position = 0
    for token in tokens:
        if any(position < end < position + len(token) for end in ends):
            return token
        position += len(token)
    return None


def _type_mistake(values) -> str | None:
    """What gpt2_encode returned instead of a flat list of ids, or None."""
    if values is not None and all(integral(i) for i in values):
        return None
    if values and all(isinstance(v, str) for v in values):
        return (f"gpt2_encode should return ids (ints), got the token strings {shown(values, 6)}: look each token up "
                f"in gpt2_vocabulary")
    if values and all(isinstance(v, list) for v in values):
        return (f"gpt2_encode should return one flat list of ids, got a list of lists (one per chunk?) "
                f"{shown(values, 4)}: put the ids of every chunk into one list")
    return f"gpt2_encode should return a list of ints, got {shown(values, 6) if values is not None else 'other values'}"


def _spelling_mistake(text: str, decoded: str, said: str) -> str | None:
    """Why the tokens spell `decoded` and not `text`, or None when they spell the text."""
    from coursekit.bpe import pretokenize  # judge side: the reference is never in a sandbox

    if decoded == text:
        return None
    if "\ufffd" in decoded and "\ufffd" not in text:
        return (f"{said}: your tokens do not spell the text's bytes; map each byte of chunk.encode('utf-8') through "
                f"byte_encoder (not each character)")
    if decoded == " " + text:
        return f"{said}: a space was added in front of the text; encode the text as it is"
    if decoded == text.lower() or decoded == text.upper():
        return f"{said}: the text's letters changed case; GPT-2 encodes the text as it is ('A' and 'a' are other tokens)"
    if decoded in (text.strip(), text.rstrip(), text.lstrip()):
        return (f"{said}: the spaces and newlines are missing at the ends of the text (stripped); encode the text as "
                f"it is, every character")
    if decoded in ("".join(text.split()), " ".join(text.split())):
        return (f"{said}: the spaces and newlines are missing, so text.split() (or a pattern without them) cut the "
                f"text; split with regex.findall(GPT2_SPLIT_PATTERN, text), whose chunks keep every character, a "
                f"space staying with the word after it")
    chunks = pretokenize(text)
    for k, chunk in enumerate(chunks):
        if decoded == "".join(chunks[:k] + chunks[k + 1:]):
            return f"{said}: the chunk {chunk!r} is missing; encode every chunk of the text"
    at = next((i for i, (a, b) in enumerate(zip(text, decoded)) if a != b), min(len(text), len(decoded)))
    return (f"{said}: your tokens spell {decoded!r}, not the text: at character {at} the text has "
            f"{text[at:at + 3]!r}, your tokens {decoded[at:at + 3]!r}. GPT-2 encodes every character once, as it is "
            f"(no normalisation, no replacement, nothing dropped or added)")


def _gpt2_mistake(got, texts: list[str]) -> str | None:
    import regex
    from tokenizers import decoders

    reference = _gpt2_reference()
    for text, ids in zip(texts, got):
        if ids["type"] == "KeyError":
            return _key_error_mistake(text, ids)
        if ids["type"] != "list":
            return f"gpt2_encode should return a list of ints, got a {ids['type']}"
        if _type_mistake(ids["value"]):
            return _type_mistake(ids["value"])
        expected = reference.encode(text).ids
        if ids["value"] == expected:
            continue
        tokens = [reference.id_to_token(i) for i in expected]
        said = f"gpt2_encode({text!r}) should be {shown(expected)} (tokens {shown(tokens)}), got {shown(ids['value'])}"
        for shift in (1, -1):
            if ids["value"] == [i + shift for i in expected]:
                return f"{said}: every id is off by {shift}; the id of a token is gpt2_vocabulary[token], as it is"
        if 50256 in ids["value"] and 50256 not in expected:
            return (f"{said}: the extra id 50256 is <|endoftext|>, which marks the end of a document; gpt2_encode "
                    f"encodes the text only")
        got_tokens = [reference.id_to_token(i) if 0 <= i < 50257 else None for i in ids["value"]]
        if None not in got_tokens:
            said += f" (tokens {shown(got_tokens)})"
            spelling = _spelling_mistake(text, decoders.ByteLevel().decode(got_tokens) if got_tokens else "", said)
            if spelling:
                return spelling
            if ids["value"] == _encoded_in_chunks(regex.findall(CASE_INSENSITIVE_CONTRACTIONS, text)):
                return (f"{said}: GPT-2's pattern matches the contractions 's, 't, 're, 've, 'm, 'll and 'd in "
                        f"lowercase only, so in {text!r} the letters after an apostrophe stay with their word; use "
                        f"GPT2_SPLIT_PATTERN as it is (no case-insensitive flag)")
            crossing = _crosses_chunks(text, got_tokens)
            if crossing:
                return (f"{said}. The token {crossing!r} spans two chunks: split the text with "
                        f"regex.findall(GPT2_SPLIT_PATTERN, text) first and run BPE inside each chunk")
        return (f"{said}. Split with the GPT-2 pattern first, map each chunk's UTF-8 bytes through byte_encoder, "
                f"then repeatedly merge the pair of lowest rank")
    return None


GPT2_MIXED = ["ROMEO:\n  But, soft! I'm café-naïve 🙂 東京 1234567\t\tthey'll  ", "\n\nDON'T 3.14 서울 👍🏽 it's   ",
              "O'DONNELL WE'READ: cafe\u0301 ﬁ… ＡＢＣ\r\nno\u00a0break Pneumonoultramicroscopicsilicovolcanoconiosis"]


CONTRACTIONS = ["I'm", "they'll", "it's", "we've", "you're", "he'd", "don't"]
CAPITAL_CONTRACTIONS = ["O'DONNELL", "WE'READ", "JOHN'STONE", "I'MAGINE"]  # 'D, 'RE, 'S, 'M are no contractions here
# What GPT-2 must not normalise (a decomposed accent, a ligature, full-width letters, \r\n, a no-break space; a
# Hugging Face tokenizer may, so these are GPT-2's only) and a chunk of 45 characters.
UNNORMALISED = " cafe\u0301 ﬁ… ＡＢＣ\r\nno\u00a0break Pneumonoultramicroscopicsilicovolcanoconiosis"


def _mixed_gpt2_texts() -> list[str]:
    """mixed_texts; when grading, each with a contraction, a capital word with an apostrophe and UNNORMALISED in
    its middle (its ends stay as mixed_texts made them: whitespace at the ends is part of the test)."""
    texts = mixed_texts(4, GPT2_MIXED)
    if is_public():
        return texts
    rng = probe_rng()
    return [f"{text[:len(text) // 2]} {rng.choice(CONTRACTIONS)} {rng.choice(CAPITAL_CONTRACTIONS)}{UNNORMALISED} "
            f"{text[len(text) // 2:]}" for text in texts]


check_gpt2_encode = Check(
    exercise="gpt2_encode",
    expects=["a function gpt2_encode(text) -> list[int]"],
    tests=[*(Test(f"gpt2_encode on {group}", _gpt2_probe(lambda texts=texts: texts),
                  lambda got, texts=texts: _gpt2_mistake(got, texts), 0.25) for group, texts in GPT2_TEXTS.items()),
           Test("gpt2_encode on mixed texts", _gpt2_probe(_mixed_gpt2_texts),
                lambda got: _gpt2_mistake(got, _mixed_gpt2_texts()), 4.0)],
)
