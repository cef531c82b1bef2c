"""GPT-2's tokenizer, from scratch: OpenAI's `encoder.json` and `vocab.bpe` read into the byte-level BPE of
`coursekit.bpe`.

GPT-2 is the same algorithm as `coursekit.bpe`: split text with GPT-2's pattern, turn each chunk into UTF-8
bytes, apply the merges in the order they were learned. Only two things are new:
- the files spell tokens as printable strings ("Ġthe" is the bytes b" the"), through `bytes_to_unicode`;
- in GPT-2's numbering, bytes are not ids 0..255 in order ("!" is id 0), so each byte is looked up in `encoder.json`.

    >>> encoder = GPT2Encoder.from_files()
    >>> encoder.encode("Hello world")
    [15496, 995]
    >>> encoder.decode([15496, 995]), encoder.decoder[995]
    ('Hello world', 'Ġworld')
"""

from __future__ import annotations

import json
from pathlib import Path

from coursekit import data
from coursekit.bpe import apply_merges, pretokenize
from coursekit.gpt2_tables import bytes_to_unicode


def read_merges(file: str | Path) -> list[tuple[str, str]]:
    """The merges of a `vocab.bpe` file, first learned first: a "#version" header, then "first second" lines.

    >>> read_merges(data.path("gpt2-merges"))[:2]
    [('Ġ', 't'), ('Ġ', 'a')]
    """
    lines = Path(file).read_text(encoding="utf-8").splitlines()
    return [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]


class GPT2Encoder:
    """GPT-2's tokenizer: `encoder` maps token strings to ids ("Ġthe" -> 262), `merges` lists string pairs in
    the order they were learned ([("Ġ", "t"), ("Ġ", "a"), ...]).

    >>> GPT2Encoder({"a": 0, "b": 1, "ab": 2}, [("a", "b")]).encode("ab")  # a toy vocabulary: bytes a, b only
    [2]
    """

    def __init__(self, encoder: dict[str, int], merges: list[tuple[str, str]]):
        self.encoder = encoder
        self.decoder = {id: token for token, id in encoder.items()}  # 995 -> "Ġworld", to look at tokens
        byte_to_char = bytes_to_unicode()
        char_to_byte = {char: byte for byte, char in byte_to_char.items()}
        # GPT-2's id of each single byte, when the vocabulary has it (a toy vocabulary may not).
        self.byte_ids = {byte: encoder[char] for byte, char in byte_to_char.items() if char in encoder}
        self.token_bytes = {id: bytes(char_to_byte[char] for char in token) for token, id in encoder.items()}
        # `apply_merges` applies the pair with the smallest new id first, so new ids must grow with the merge's
        # rank (its line in vocab.bpe). GPT-2's files number merged tokens that way: rank 0 -> id 256, ...
        self.merges = {}
        previous_id = -1
        for rank, (first, second) in enumerate(merges):
            new_id = encoder[first + second]
            if new_id <= previous_id:
                raise ValueError(f"Merge {rank} ({first!r} + {second!r}) has id {new_id}, lower than the merge before "
                                 f"it: this tokenizer needs ids that grow with merge rank, as in GPT-2's files.")
            self.merges[encoder[first], encoder[second]] = previous_id = new_id
        self._chunk_cache: dict[str, list[int]] = {}

    @classmethod
    def from_files(cls, encoder_file: str | Path | None = None, merges_file: str | Path | None = None) -> GPT2Encoder:
        """GPT-2's tokenizer from `encoder.json` and `vocab.bpe` (by default the course's verified copies)."""
        encoder_file = encoder_file or data.path("gpt2-encoder")
        merges_file = merges_file or data.path("gpt2-merges")
        encoder = json.loads(Path(encoder_file).read_text(encoding="utf-8"))
        return cls(encoder, read_merges(merges_file))

    def encode(self, text: str) -> list[int]:
        """GPT-2's ids for the text.

        >>> GPT2Encoder.from_files().encode(" the")
        [262]
        """
        ids = []
        cache = self._chunk_cache
        for chunk in pretokenize(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                byte_ids = [self.byte_ids[byte] for byte in chunk.encode("utf-8")]
                chunk_ids = cache[chunk] = apply_merges(byte_ids, self.merges)
            ids.extend(chunk_ids)
        return ids

    def decode(self, ids: list[int]) -> str:
        """The text of some ids; invalid UTF-8 (e.g. half an emoji) becomes "\ufffd".

        >>> GPT2Encoder.from_files().decode([262, 50256])
        ' the<|endoftext|>'
        """
        return b"".join(self.token_bytes[id] for id in ids).decode("utf-8", errors="replace")
