"""Notebook 01's 512-token BPE tokenizer, for the notebooks after it, whether or not notebook 01 has run.

Notebook 01 trains a byte-level BPE tokenizer with Hugging Face `tokenizers` on tinyshakespeare and saves it as
`cache_dir()/tokenizers/notebook01-bpe-512.json`. `load_bpe512()` returns that file's tokenizer when it is in a data
directory, and otherwise trains the same tokenizer again (same settings; training is deterministic) and saves it
there, so notebook 05 and the GPU recipe of notebook 04 can start from any state of the cache.

A model trained on one tokenizer's ids is meaningless with another's: `tokenizer_id()` names a tokenizer by a hash of
its contents, and checkpoints store it so that a notebook can tell whether a saved model fits its tokenizer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from coursekit import data

VOCAB_SIZE = 512
FILENAME = Path("tokenizers") / "notebook01-bpe-512.json"


def train_bpe512(text: str, vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Notebook 01's recipe: byte-level BPE with byte fallback and all 256 byte symbols in the vocabulary.

    >>> train_bpe512("to be or not to be", vocab_size=260).encode("to be").tokens
    ['to', 'Ġbe']
    """
    tokenizer = Tokenizer(models.BPE(byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator([text], trainer=trainer)
    return tokenizer


def find_bpe512() -> Path | None:
    """The saved tokenizer file in the first data directory that has one, else None."""
    for directory in data.cache_dirs():
        candidate = directory / FILENAME
        if candidate.is_file():
            return candidate
    return None


def load_bpe512(verbose: bool = True) -> Tokenizer:
    """Notebook 01's tokenizer from the data cache; trained on tinyshakespeare and saved there if it is missing."""
    found = find_bpe512()
    if found is not None:
        tokenizer = Tokenizer.from_file(str(found))
        if tokenizer.get_vocab_size() == VOCAB_SIZE:
            if verbose:
                print(f"BPE-512 tokenizer loaded from {found}")
            return tokenizer
        if verbose:
            print(f"{found} has {tokenizer.get_vocab_size()} tokens, not {VOCAB_SIZE}: training the tokenizer again")
    tokenizer = train_bpe512(data.read_text("tinyshakespeare"))
    target = data.cache_dir() / FILENAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(target))
    if verbose:
        print(f"BPE-512 tokenizer trained on tinyshakespeare (as in notebook 01) and saved to {target}")
    return tokenizer


def tokenizer_id(tokenizer: Tokenizer | None = None) -> dict:
    """{"name": "bpe-512", "sha256": ...}: what a checkpoint records about the tokenizer its ids come from."""
    tokenizer = tokenizer if tokenizer is not None else load_bpe512(verbose=False)
    digest = hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()
    return {"name": f"bpe-{tokenizer.get_vocab_size()}", "sha256": digest}
