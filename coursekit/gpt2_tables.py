"""GPT-2's two published conventions that every byte-level BPE here shares: data, not an exercise.

- `GPT2_SPLIT_PATTERN`, the regular expression that cuts text into chunks before BPE (merges never cross chunks);
- `bytes_to_unicode`, the table that spells each byte as a printable character in GPT-2's files ("Ġ" is a space).

Notebook 01 hands both to the student (its exercises use them); the BPE trainers and encoders that are the
answers to its exercises live in `coursekit.bpe` and `coursekit.gpt2_encoder`, which import from here.

    >>> import regex
    >>> regex.findall(GPT2_SPLIT_PATTERN, "I'll pay  1234!")
    ['I', "'ll", ' pay', ' ', ' 1234', '!']
"""

from __future__ import annotations

# GPT-2's split: contractions, letters, numbers, anything else, then whitespace. `\s+(?!\S)` takes a run of
# whitespace but leaves its last space to start the next word, so "a   b" splits as "a", "  ", " b".
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each of the 256 bytes to a printable, non-space character.

    Why: `vocab.bpe` is a text file with one merge per line, two tokens separated by a space, e.g. "Ġ t". A token
    that contained a real space, a newline or a control byte would break that format and be hard to read. So
    each byte that already is a visible character (letters, digits, punctuation, most of Latin-1) stands for
    itself, and each remaining byte (controls, space, ...) is given an unused visible character, 256 onwards, in
    byte order: the space (byte 32) gets chr(256 + 32) = "Ġ", the newline (byte 10) gets "Ċ".

    >>> table = bytes_to_unicode()
    >>> table[ord("a")], table[ord(" ")], table[ord("\\n")], len(set(table.values()))
    ('a', 'Ġ', 'Ċ', 256)
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in visible}
    stand_ins = (chr(256 + offset) for offset in range(256))
    for byte in range(256):
        if byte not in table:
            table[byte] = next(stand_ins)
    return table
