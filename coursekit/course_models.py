"""The course's own language models: what notebook 06 runs on when GPT-2's weights are not on the machine.

The earlier notebooks leave trained GPTs in the data cache: notebook 04 its character-level model
(`notebook04-char-gpt`), notebook 05 a GPT on notebook 01's 512-token BPE vocabulary (`notebook05-bpe512-gpt`), and
the GPU recipe of notebook 04 a bigger BPE model (`notebook04-bpe512-gpt`). Their losses are per token, and a BPE
token is about two characters, so they are compared per character, on the same text: the last 20,000 characters of
tinyshakespeare, which lie in every model's validation split. `course_model()` returns the one with the lowest loss
per character and prints the comparison. With none of them in the cache it trains a small BPE stand-in (about half a
minute of CPU) and keeps it for the next run.

A BPE model has word tokens (` the`, ` lord`, ` thou`), so it can show word-level structure that a character model
cannot: which words get similar vectors, which word comes next. It is still tiny next to GPT-2.

    >>> tokenizer = BPETokenizer(course_tokenizer.train_bpe512("to be or not to be", vocab_size=260))
    >>> tokenizer.encode("to be"), tokenizer.decode(tokenizer.encode("to be"))
    ([257, 258], 'to be')
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from tokenizers import Tokenizer

from coursekit import course_tokenizer, data
from coursekit.gpt import GPT, GPTConfig
from coursekit.gpt2 import LanguageModel

COURSE_CHECKPOINTS = {  # checkpoint name -> (what it is, a short name for plot titles)
    "notebook04-char-gpt": ("your character-level GPT from notebook 04", "your notebook 04 GPT"),
    "notebook05-bpe512-gpt": ("notebook 05's GPT on the 512-token BPE vocabulary", "notebook 05's BPE GPT"),
    "notebook04-bpe512-gpt": ("the GPU recipe's GPT on the 512-token BPE vocabulary (notebook 04)",
                              "the GPU recipe's BPE GPT"),
}
STAND_IN = "notebook06-bpe512-stand-in"
STAND_IN_LABELS = ("a small stand-in GPT trained for notebook 06", "a small BPE stand-in")
STAND_IN_CONFIG = GPTConfig(vocab_size=course_tokenizer.VOCAB_SIZE, block_size=64, n_layer=2, n_head=4, n_embd=64,
                            dropout=0.0)
STAND_IN_STEPS = 500
COMPARISON_CHARACTERS = 20_000  # the end of tinyshakespeare: validation text for every course model
BATCH_WINDOWS = 64  # windows per forward pass when measuring a loss


class BPETokenizer:
    """Notebook 01's BPE tokenizer with the interface of the course's models: encode(text) -> ids, decode(ids)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids])


@torch.no_grad()
def loss_per_character(model: GPT, tokenizer, text: str) -> float:
    """Mean cross-entropy in nats per *character* of text, read in windows of block_size tokens.

    Per token, a model whose tokens are longer looks worse than it is; per character, models with different
    tokenizers can be compared. Each window predicts its tokens 1..T from the tokens before them.
    """
    ids = torch.tensor(tokenizer.encode(text))
    T = model.config.block_size
    windows = (len(ids) - 1) // T
    if windows == 0:
        raise ValueError(f"the text is {len(ids)} tokens long: at least {T + 1} are needed for one window")
    inputs, targets = ids[: windows * T].view(windows, T), ids[1 : windows * T + 1].view(windows, T)
    was_training = model.training
    model.eval()
    nats = 0.0
    for start in range(0, windows, BATCH_WINDOWS):
        logits, _ = model(inputs[start : start + BATCH_WINDOWS])
        nats += F.cross_entropy(logits.flatten(0, 1), targets[start : start + BATCH_WINDOWS].flatten(),
                                reduction="sum").item()
    model.train(was_training)
    return nats / len(tokenizer.decode(targets.flatten().tolist()))  # the targets are one stretch of the text


def tokenizer_for(info: dict, text: str):
    """(tokenizer, kind) for the ids of a checkpoint: the characters of text ("char") or notebook 01's BPE-512
    tokenizer ("bpe"); None when coursekit does not have the tokenizer the checkpoint was trained with."""
    from coursekit.training import CharTokenizer

    recorded = info.get("tokenizer")
    name = recorded.get("name") if isinstance(recorded, dict) else recorded
    if name == "char":
        tokenizer = CharTokenizer(text)
        vocabulary = recorded.get("vocabulary") if isinstance(recorded, dict) else None
        same = vocabulary in (None, "".join(tokenizer.characters)) and info["config"]["vocab_size"] == len(
            tokenizer.characters)
        return (tokenizer, "char") if same else None
    if name == f"bpe-{course_tokenizer.VOCAB_SIZE}":
        bpe = course_tokenizer.load_bpe512(verbose=False)
        return (BPETokenizer(bpe), "bpe") if recorded == course_tokenizer.tokenizer_id(bpe) else None
    return None


def from_checkpoint(name: str, labels: tuple[str, str], text: str) -> LanguageModel | None:
    """Checkpoint `name` with its tokenizer; None when it is not in the cache or was trained on unknown tokens."""
    from coursekit.checkpoints import CheckpointError, load_checkpoint

    try:
        model, info = load_checkpoint(name)
    except CheckpointError:
        return None
    found = tokenizer_for(info, text)
    if found is None:
        return None
    tokenizer, kind = found
    tokens = "characters as tokens" if kind == "char" else "BPE-512 tokens"
    label, short_name = labels
    return LanguageModel(model, tokenizer, f"{label} ({tokens}, checkpoint {name!r})", short_name, kind=kind)


def train_stand_in(text: str, steps: int | None = None, progress: bool = False) -> LanguageModel:
    """A small GPT on the BPE-512 tokens of text, trained now for steps (default STAND_IN_STEPS: about 30 s of
    CPU) and saved as checkpoint STAND_IN."""
    from coursekit.checkpoints import save_checkpoint
    from coursekit.training import Trainer, TrainingConfig, train_val_split

    steps = steps or STAND_IN_STEPS
    bpe = course_tokenizer.load_bpe512(verbose=False)
    train, val = train_val_split(torch.tensor(bpe.encode(text).ids))
    torch.manual_seed(0)
    model = GPT(STAND_IN_CONFIG)
    settings = TrainingConfig(max_steps=steps, batch_size=16, learning_rate=3e-3, warmup_steps=min(50, steps),
                              min_learning_rate=3e-4, eval_interval=steps, eval_batches=4, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread, most of all on a busy machine
    try:
        with torch.enable_grad():  # also when the caller switched gradients off
            history = Trainer(model, train, val, settings, progress=progress).train()
    finally:
        torch.set_num_threads(threads)
    save_checkpoint(model, STAND_IN, tokenizer=course_tokenizer.tokenizer_id(bpe),
                    metadata={"steps": steps, "val_loss": history["val_loss"][-1],
                              "made_by": "coursekit.course_models.train_stand_in"})
    return from_checkpoint(STAND_IN, STAND_IN_LABELS, text)


def course_model(names: tuple[str, ...] = tuple(COURSE_CHECKPOINTS), verbose: bool = True) -> LanguageModel:
    """The best of the named course checkpoints in the cache, by loss per character; the stand-in without any.

    With verbose, prints each candidate's loss per character and which one is used.
    """
    text = data.read_text("tinyshakespeare")
    found = [model for name in names if (model := from_checkpoint(name, COURSE_CHECKPOINTS[name], text))]
    if not found:
        found = [from_checkpoint(STAND_IN, STAND_IN_LABELS, text) or train_stand_in(text)]
    held_out = text[-COMPARISON_CHARACTERS:]
    losses = [loss_per_character(candidate.model, candidate.tokenizer, held_out) for candidate in found]
    best = min(range(len(found)), key=losses.__getitem__)
    if verbose:
        print(f"course models found, by loss per character on the last {COMPARISON_CHARACTERS:,} characters of "
              f"Shakespeare (lower is better):")
        for index in sorted(range(len(found)), key=losses.__getitem__):
            print(f"  {losses[index]:.3f} nats  {found[index].name}{'  <- used' if index == best else ''}")
    return found[best]
