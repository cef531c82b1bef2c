"""Exercise 4.1's check against forgery: in grading, what a probe returns is a claim written by code the student
controls. The judges take only the tokenizer's JSON, rebuild the tokenizer and run it, so hostile claims (the
settings or round trips a right tokenizer would report, JSON written by hand, JSON made to exhaust the judge) fail
with a message that says why, under a secret run seed, while a right tokenizer passes; and the grader's judge
process, a separate interpreter, can run them."""

import json
import re

import pytest
from tokenizers import ByteLevelBPETokenizer, Regex, Tokenizer, pre_tokenizers

from coursekit import checks, data
from coursekit.grading import judging
from test_checks_tokenization import REF, hf_tokenizer

RUN_SEED = 12345
CHECK = checks.check_hf_tokenizer
CORE = max(CHECK.tests, key=lambda test: test.weight).name  # the test that carries the exercise


def reference_json(change=lambda settings: None) -> str:
    """The solution's tokenizer's JSON, with `change` applied to its parsed settings."""
    settings = json.loads(REF["hf_tokenizer"].to_str())
    change(settings)
    return json.dumps(settings)


def written_by_hand(merges: list[tuple[str, str]]) -> str:
    """A byte-level BPE tokenizer's JSON as a forger writes it: the 256 byte symbols, then one entry per merge."""
    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for first, second in merges:
        vocab[first + second] = len(vocab)
    return reference_json(lambda settings: settings["model"].update(vocab=vocab, merges=[list(m) for m in merges]))


def three_words_and_junk() -> str:
    """512 entries whose merges make ' the', ' and', ' to' single tokens, the rest pairs of symbols of bytes that
    Shakespeare never uses (the ByteLevel symbols of control bytes and bytes over 127)."""
    words = [("Ġ", "t"), ("Ġt", "h"), ("Ġth", "e"), ("Ġ", "a"), ("Ġa", "n"), ("Ġan", "d"), ("Ġt", "o")]
    unused = sorted(symbol for symbol in pre_tokenizers.ByteLevel.alphabet() if ord(symbol) > 0xFF)
    junk = [(a, b) for a in unused for b in unused][:256 - len(words)]
    return written_by_hand(words + junk)


def gpt2_json() -> str:
    gpt2 = ByteLevelBPETokenizer(str(data.path("gpt2-encoder")), str(data.path("gpt2-merges")))
    return gpt2.to_str().replace('"byte_fallback":false', '"byte_fallback":true')  # so its size is what is wrong


def with_pre_tokenizer(pre_tokenizer) -> str:
    tokenizer = Tokenizer.from_str(REF["hf_tokenizer"].to_str())
    tokenizer.pre_tokenizer = pre_tokenizer
    return tokenizer.to_str()


FORGERIES = {
    "expected your tokenizer's JSON .*got a dict": lambda: {"vocab_size": 512, "model": "BPE", "byte_fallback": True,
                                                             "pre_tokenizer": "ByteLevel", "decoder": "ByteLevel"},
    "expected your tokenizer's JSON .*got a list": lambda: ["ROMEO:\nBut, soft! what light", "  two  spaces\t"],
    "has 0 entries \\(train it": lambda: hf_tokenizer(train=None).to_str(),
    "does not load as a tokenizer: (Unterminated|Expecting)": lambda: REF["hf_tokenizer"].to_str()[:3000],
    "does not load as a tokenizer: .*nonsense": lambda: reference_json(
        lambda settings: settings["model"]["merges"].append(["Ġthe", "nonsense"])),
    "has 52,4\\d\\d,\\d+ characters, far more": lambda: REF["hf_tokenizer"].to_str() + " " * 50 * 2**20,
    "has 256 entries": lambda: written_by_hand([]),
    "only \\d of the 256 merges that BPE learns from the whole of `text`": three_words_and_junk,
    "has 50257 entries": gpt2_json,
    "has 110512 entries": lambda: reference_json(lambda settings: settings["model"]["vocab"].update(
        {f"x{i}": 512 + i for i in range(110_000)})),  # as large as a JSON the judge loads may be
    "pre_tokenizer includes 'Split', which the grader does not run": lambda: with_pre_tokenizer(
        pre_tokenizers.Sequence([pre_tokenizers.Split(Regex("(a+)+$"), "isolated"), pre_tokenizers.ByteLevel()])),
    "pipeline has 41 parts": lambda: with_pre_tokenizer(pre_tokenizers.Sequence([pre_tokenizers.ByteLevel()] * 40)),
    "pads or truncates": lambda: reference_json(lambda settings: settings.update(padding={
        "strategy": {"Fixed": 10**12}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
        "pad_type_id": 0, "pad_token": "Ā"})),
}


@pytest.mark.parametrize("message", FORGERIES)
def test_a_forged_claim_fails_under_a_secret_seed_with_a_message_saying_why(message):
    claim = FORGERIES[message]()
    outcomes = CHECK.judge([(test.name, claim) for test in CHECK.tests], run_seed=RUN_SEED)
    [core] = [outcome for outcome in outcomes if outcome.test == CORE]
    assert not core.passed
    assert re.search(message, core.message), core.message
    assert CHECK.fraction(outcomes) <= 0.3, outcomes


@pytest.mark.parametrize("seed", [RUN_SEED, 7, 2024])
def test_a_right_tokenizer_s_json_passes_under_secret_seeds(seed):
    outcomes = CHECK.judge(CHECK.probe_all((hf_tokenizer(),), seed), run_seed=seed)
    assert all(outcome.passed for outcome in outcomes), outcomes


def test_the_grader_s_judge_process_runs_the_tokenizer_and_refuses_a_hostile_one():
    judges = judging.Judges([], memory_bytes=4 * 2**30, seconds=60)
    try:
        honest = judges.judge("check_hf_tokenizer", CHECK.probe_all((REF["hf_tokenizer"],), RUN_SEED), RUN_SEED)
        hostile = FORGERIES["pipeline has 41 parts"]()
        forged = judges.judge("check_hf_tokenizer", [(test.name, hostile) for test in CHECK.tests], RUN_SEED)
    finally:
        judges.close()
    assert all(outcome.passed for outcome in honest), honest
    assert all(not outcome.passed and "pipeline has 41 parts" in outcome.message for outcome in forged), forged
