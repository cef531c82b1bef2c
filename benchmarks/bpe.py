"""How fast is the from-scratch BPE of `coursekit.bpe` next to Hugging Face `tokenizers` (Rust)?

    python benchmarks/bpe.py [--repeats 3]

On the full tinyshakespeare, times training to a vocabulary of 512 and encoding the whole corpus, for both, and
prints seconds, the ratio ours / Hugging Face and whether the course's targets hold (train <= 1.5x, encode <= 1.0x).
Hugging Face's trainer starts from the same 256-byte alphabet as ours (`initial_alphabet`), so both learn 256 merges
with the same GPT-2 pre-tokenizer split; the script prints how many merges agree and both token counts. Encoding is
timed two ways for Hugging Face: the corpus as one string (`encode`) and line by line (`encode_batch`, the way a
corpus is usually encoded, in parallel over its threads).
Each number is the best of a few repeats in this one process, so a busy machine hurts both sides alike; other
people's jobs on a shared CPU can still move single numbers, so rerun before trusting a close call.
"""

import argparse
import json
import time

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from coursekit import data
from coursekit.bpe import BPETokenizer, train_bpe
from coursekit.gpt2_encoder import bytes_to_unicode

VOCAB_SIZE = 512
TARGETS = {"train": 1.5, "encode": 1.0}  # the most ours may take, as a multiple of Hugging Face's time


def best_time(function, repeats: int) -> tuple[float, object]:
    """The shortest wall-clock time of `repeats` calls, and the last call's result."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def train_hugging_face(text: str) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # all 256 bytes, as ours
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer


def merges_in_common(merges: dict, hugging_face: Tokenizer) -> int:
    """How many of our merges Hugging Face also learned at the same rank (both written in GPT-2's byte alphabet)."""
    vocab = BPETokenizer(merges).vocab
    alphabet = bytes_to_unicode()
    as_text = lambda token: "".join(alphabet[byte] for byte in vocab[token])  # noqa: E731
    ours = [(as_text(first), as_text(second)) for (first, second), _ in sorted(merges.items(), key=lambda m: m[1])]
    theirs = [tuple(m.split(" ") if isinstance(m, str) else m)
              for m in json.loads(hugging_face.to_str())["model"]["merges"]]
    return sum(a == b for a, b in zip(ours, theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each step; the best one counts")
    repeats = parser.parse_args().repeats
    text = data.read_text("tinyshakespeare")

    ours_train, merges = best_time(lambda: train_bpe(text, VOCAB_SIZE, progress=False), repeats)
    theirs_train, hugging_face = best_time(lambda: train_hugging_face(text), repeats)
    # A new tokenizer each time, so our chunk cache starts empty: we time encoding, not cache lookups.
    ours_encode, ids = best_time(lambda: BPETokenizer(merges).encode(text), repeats)
    theirs_encode, encoding = best_time(lambda: hugging_face.encode(text), repeats)
    lines = text.splitlines(keepends=True)
    theirs_batch, batch = best_time(lambda: hugging_face.encode_batch(lines), repeats)
    assert BPETokenizer(merges).decode(ids) == text, "our tokenizer does not round-trip the corpus"

    print(f"tinyshakespeare, {len(text):,} characters, vocabulary {VOCAB_SIZE}, best of {repeats}")
    print(f"merges: ours {len(merges)}, Hugging Face {hugging_face.get_vocab_size() - 256} "
          f"({merges_in_common(merges, hugging_face)} identical, in the same order)")
    print(f"tokens of the corpus: ours {len(ids):,}; Hugging Face {len(encoding.ids):,} (one string), "
          f"{sum(len(e.ids) for e in batch):,} ({len(lines):,} lines with encode_batch)")
    print(f"{'step':<22}{'ours (s)':>10}{'HF (s)':>10}{'ours/HF':>9}{'target':>9}  met")
    for step, ours, theirs, target in [("train", ours_train, theirs_train, TARGETS["train"]),
                                       ("encode (one string)", ours_encode, theirs_encode, TARGETS["encode"]),
                                       ("encode_batch (lines)", ours_encode, theirs_batch, None)]:
        ratio = ours / theirs
        met = "" if target is None else "yes" if ratio <= target else "NO"
        print(f"{step:<22}{ours:>10.3f}{theirs:>10.3f}{ratio:>8.2f}x{target or '':>8}{'x' if target else ' '}  {met}")


if __name__ == "__main__":
    main()
