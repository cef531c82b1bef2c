"""How fast is the from-scratch BPE of `coursekit.bpe` next to Hugging Face `tokenizers` (Rust)?

    python benchmarks/bpe.py [--repeats 3]

On the full tinyshakespeare, times training to a vocabulary of 512 and encoding the whole corpus, for both, and
prints seconds, the ratio ours / Hugging Face and whether the course's targets hold (train <= 1.5x, encode <= 1.0x).
Each number is the best of a few repeats in this one process, so a busy machine hurts both sides alike; other
people's jobs on a shared CPU can still move single numbers, so rerun before trusting a close call.
"""

import argparse
import time

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from coursekit import data
from coursekit.bpe import BPETokenizer, train_bpe

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
    tokenizer.train_from_iterator([text], trainers.BpeTrainer(vocab_size=VOCAB_SIZE, show_progress=False))
    return tokenizer


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
    assert BPETokenizer(merges).decode(ids) == text, "our tokenizer does not round-trip the corpus"

    print(f"tinyshakespeare, {len(text):,} characters, vocabulary {VOCAB_SIZE}, best of {repeats}")
    print(f"ours: {len(merges)} merges, {len(ids):,} tokens; Hugging Face: "
          f"{hugging_face.get_vocab_size()} tokens in its vocabulary, {len(encoding.ids):,} tokens")
    print(f"{'step':<8}{'ours (s)':>10}{'HF (s)':>10}{'ours/HF':>9}{'target':>9}  met")
    for step, ours, theirs in [("train", ours_train, theirs_train), ("encode", ours_encode, theirs_encode)]:
        ratio = ours / theirs
        met = "yes" if ratio <= TARGETS[step] else "NO"
        print(f"{step:<8}{ours:>10.3f}{theirs:>10.3f}{ratio:>8.2f}x{TARGETS[step]:>8.1f}x  {met}")


if __name__ == "__main__":
    main()
