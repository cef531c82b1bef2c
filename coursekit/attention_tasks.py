"""Toy tasks whose right attention pattern is known, for training a head in notebook 03 (plumbing: data only).

Each batch is random tokens `x` of shape (B, T) and targets `y` of the same shape: at position t the target is
the token `offset` positions back, `x[:, t - offset]`. With several offsets the target is their ordered tuple,
spelled as one class id (`x[t-1] * V + x[t-2]` for offsets (1, 2)), so one cross-entropy covers it. Positions
that have no token that far back get the target -100, which `F.cross_entropy` ignores by default.

    >>> x, y = copy_back_batch(1, 5, vocab_size=10, generator=torch.Generator().manual_seed(0))
    >>> x.tolist(), y.tolist()
    ([[4, 9, 3, 0, 3]], [[-100, 4, 9, 3, 0]])
"""

from __future__ import annotations

import torch

IGNORE = -100  # F.cross_entropy's default ignore_index


def copy_back_batch(batch_size: int, seq_len: int, vocab_size: int, offsets: tuple[int, ...] = (1,),
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens (B, T) and, at each position, the class of the tokens `offsets` back (IGNORE where missing).

    >>> x, y = copy_back_batch(1, 4, vocab_size=10, offsets=(1, 2), generator=torch.Generator().manual_seed(0))
    >>> x.tolist(), y.tolist()  # position 2: 9 was one back, 4 two back -> 9 * 10 + 4
    ([[4, 9, 3, 0]], [[-100, -100, 94, 39]])
    """
    if not offsets or min(offsets) < 1 or max(offsets) >= seq_len:
        raise ValueError(f"offsets should be between 1 and seq_len - 1 = {seq_len - 1}, got {offsets}")
    x = torch.randint(vocab_size, (batch_size, seq_len), generator=generator)
    y = torch.zeros_like(x)
    for offset in offsets:
        y = y * vocab_size + x.roll(offset, dims=1)  # roll brings x[t - offset] to position t
    y[:, :max(offsets)] = IGNORE  # those positions rolled in tokens from the end of the row
    return x, y


def copy_back_pattern(seq_len: int, offset: int = 1) -> torch.Tensor:
    """The (T, T) attention weights that solve the copy-back task: query t puts all its weight on key t - offset.

    Rows with no key that far back (their target is ignored) attend to position 0, the only key every row sees.

    >>> copy_back_pattern(3)
    tensor([[1., 0., 0.],
            [1., 0., 0.],
            [0., 1., 0.]])
    """
    rows = torch.arange(seq_len)
    pattern = torch.zeros(seq_len, seq_len)
    pattern[rows, (rows - offset).clamp(min=0)] = 1.0
    return pattern
