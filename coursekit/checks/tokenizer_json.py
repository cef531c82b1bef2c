"""A student's Hugging Face tokenizer, rebuilt in the judge's process from its JSON (`tokenizer.to_str()`).

The JSON is data, not code, so a judge can load it and run the tokenizer itself instead of believing what a probe
says the tokenizer does. In grading, though, the JSON is written by code the student controls, and `tokenizers`
turns it into a pipeline the judge then runs. Before `Tokenizer.from_str` sees it, `load` therefore refuses:
- a JSON of more than MAX_JSON_CHARS (a 512-token tokenizer's is about 8 KB, GPT-2's 50,257-token one 1.5 MB);
- parts of a pipeline outside PARTS: a `Split` pre-tokenizer or `Replace` normalizer runs an Oniguruma regex,
  which backtracks (a catastrophic pattern takes seconds, then panics), a `Replace` or `Prepend` can multiply
  the text's length, and a `Precompiled` normalizer parses a binary blob;
- more than MAX_PARTS parts: each ByteLevel part can double a text's length, so forty of them would exhaust
  any memory;
- padding and truncation (padding to a length of 10**12 allocates it; the exercise asks for neither).
Whatever is left costs time and memory in proportion to the JSON and the texts. A JSON `tokenizers` refuses
(truncated, not a tokenizer) is a message too, never an exception. And the grader runs judges in a child process
with a memory limit and a deadline per test (coursekit/grading/judging.py): what slips past all this costs one test.
"""

from __future__ import annotations

import json

MAX_JSON_CHARS = 2 * 2**20
MAX_PARTS = 6  # not counting Sequences; the exercise's tokenizer has 2 (a ByteLevel pre-tokenizer and decoder)
PARTS = {
    "normalizer": {"Sequence", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip", "StripAccents", "Nmt",
                   "BertNormalizer"},
    "pre_tokenizer": {"Sequence", "ByteLevel", "Whitespace", "WhitespaceSplit", "Punctuation", "Digits",
                      "Metaspace", "BertPreTokenizer", "CharDelimiterSplit", "UnicodeScripts"},
    "post_processor": {"Sequence", "ByteLevel", "TemplateProcessing"},
    "decoder": {"Sequence", "ByteLevel", "ByteFallback", "Fuse", "Metaspace", "BPEDecoder", "WordPiece", "Strip"},
}
MODELS = {"BPE", "WordPiece", "WordLevel", "Unigram"}


def load(claim):
    """The tokenizer whose JSON `claim` is, or a message saying why the judge will not run it."""
    from tokenizers import Tokenizer

    if type(claim) is not str:
        return f"the grader expected your tokenizer's JSON (tokenizer.to_str()), got a {type(claim).__name__}"
    if len(claim) > MAX_JSON_CHARS:
        return (f"your tokenizer's JSON (tokenizer.to_str()) has {len(claim):,} characters, far more than a "
                f"512-token tokenizer's (about 8,000): train with BpeTrainer(vocab_size=512, ...)")
    unreadable = "your tokenizer's JSON (tokenizer.to_str()) does not load as a tokenizer: "
    try:
        settings = json.loads(claim)
    except (ValueError, RecursionError) as error:
        return f"{unreadable}{str(error):.120}"
    if type(settings) is not dict:
        return f"{unreadable}it is a {type(settings).__name__}, not an object of settings"
    refused = _refused_part(settings)
    if refused:
        return refused
    try:
        return Tokenizer.from_str(claim)
    except Exception as error:  # tokenizers raises a bare Exception for JSON it cannot read
        return f"{unreadable}{str(error):.120}"


def _refused_part(settings: dict) -> str | None:
    """Why the pipeline `settings` describes is not one the judge runs, or None."""
    if settings.get("padding") is not None or settings.get("truncation") is not None:
        return ("your tokenizer pads or truncates its encodings: the exercise asks for neither "
                "(tokenizer.no_padding(), tokenizer.no_truncation())")
    model = settings.get("model")
    kind = model.get("type") if type(model) is dict else model
    if type(kind) is not str or kind not in MODELS:
        return f"the model should be models.BPE(...), got {kind!r:.40}"
    count = 0
    for slot, allowed in PARTS.items():
        for kind in _part_types(settings.get(slot)):
            if type(kind) is not str or kind not in allowed:
                return (f"your tokenizer's {slot} includes {kind!r:.40}, which the grader does not run: the exercise "
                        f"needs only pre_tokenizers.ByteLevel(add_prefix_space=False) and decoders.ByteLevel()")
            count += kind != "Sequence"
    if count > MAX_PARTS:
        return (f"your tokenizer's pipeline has {count} parts (normalizers, pre-tokenizers, post-processors, "
                f"decoders), more than the grader runs ({MAX_PARTS}): the exercise needs a ByteLevel pre-tokenizer "
                f"and a ByteLevel decoder")
    return None


def _part_types(part) -> list:
    """The "type" of every component in one slot of a tokenizer's JSON, Sequences' contents included."""
    kinds, pending = [], [part]
    while pending:
        value = pending.pop()
        if type(value) is list:
            pending.extend(value)
        elif type(value) is dict:
            if "type" in value:
                kinds.append(value["type"])
            pending.extend(item for item in value.values() if type(item) in (list, dict))
    return kinds
