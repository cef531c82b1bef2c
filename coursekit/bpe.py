"""Byte-level byte pair encoding (BPE), from scratch.

Text is turned into UTF-8 bytes, so ids 0..255 are the 256 possible bytes and any Unicode string can be encoded.
Training repeatedly finds the most frequent pair of adjacent ids and replaces it with a new id: 256, 257, ...
Encoding replays those merges in the order they were learned; decoding concatenates the bytes of each id.

Before counting pairs, text is split into chunks with GPT-2's pattern (words with their leading space, numbers,
punctuation, whitespace), and merges never cross a chunk boundary: "dog." and "dog!" then share the token "dog"
instead of learning "dog." and "dog!" separately.

    >>> tokenizer = BPETokenizer(train_bpe("aaabdaaabac", vocab_size=259, progress=False))
    >>> tokenizer.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> tokenizer.decode([258, 100])
    'aaabd'

Two trainers learn identical merges: `train_bpe_naive` is the textbook loop (recount every pair after every
merge), `train_bpe` is the fast one (count each distinct chunk once, update only the counts a merge changes).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import regex  # the stdlib `re` has no \p{L} (any letter) or \p{N} (any number)
from tqdm.auto import tqdm

from coursekit.gpt2_tables import GPT2_SPLIT_PATTERN

_gpt2_split = regex.compile(GPT2_SPLIT_PATTERN)

Pair = tuple[int, int]


def pretokenize(text: str) -> list[str]:
    """Split text into the chunks BPE works inside; joining them gives back the text.

    >>> pretokenize("Hello world's  end!")
    ['Hello', ' world', "'s", ' ', ' end', '!']
    """
    return _gpt2_split.findall(text)


def pair_counts(ids: list[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """How often each adjacent pair occurs; adds to `counts` when given (to count over many chunks).

    >>> pair_counts([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of `pair` with `new_id`, scanning left to right.

    >>> merge_pair([1, 2, 3, 1, 2], (1, 2), 256)
    [256, 3, 256]
    >>> merge_pair([7, 7, 7], (7, 7), 256)  # overlapping: the leftmost occurrence wins
    [256, 7]
    """
    first, second = pair
    merged = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == first and i + 1 < n and ids[i + 1] == second:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def most_frequent_pair(counts: dict[Pair, int]) -> Pair:
    """The pair to merge next: the highest count; among equal counts, the smallest pair (so training is
    deterministic and does not depend on dictionary order).

    >>> most_frequent_pair({(5, 9): 2, (3, 1): 2, (1, 2): 1})
    (3, 1)
    """
    return min(counts, key=lambda pair: (-counts[pair], pair))


def _check_vocab_size(vocab_size: int) -> None:
    if vocab_size < 256:
        raise ValueError(f"vocab_size must be at least 256 (one id per byte), got {vocab_size}.")


def train_bpe_naive(text: str, vocab_size: int) -> dict[Pair, int]:
    """The textbook trainer: after every merge, recount all pairs in all chunks. Returns {pair: new id}.

    Slow (every merge rereads the whole text) but easy to check by hand; `train_bpe` must agree with it.
    Stops early if no pair is left to merge.

    >>> train_bpe_naive("aaabdaaabac", vocab_size=259)
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    """
    _check_vocab_size(vocab_size)
    chunks = [list(chunk.encode("utf-8")) for chunk in pretokenize(text)]
    merges = {}
    for new_id in range(256, vocab_size):
        counts = {}
        for ids in chunks:
            pair_counts(ids, counts)
        if not counts:
            break
        pair = most_frequent_pair(counts)
        merges[pair] = new_id
        chunks = [merge_pair(ids, pair, new_id) for ids in chunks]
    return merges


def train_bpe(text: str, vocab_size: int, progress: bool = True) -> dict[Pair, int]:
    """The fast trainer; learns exactly the merges of `train_bpe_naive`. Returns {pair: new id}.

    Three ideas make it fast:
    1. Most chunks repeat (" the" occurs thousands of times), so each distinct chunk is stored once with its
       frequency, and a pair's count is the sum of the frequencies of the chunks it occurs in.
    2. A merge only changes the chunks that contain the merged pair: an index pair -> chunks finds them, and only
       their pair counts are updated.
    3. A heap gives the most frequent pair without scanning all counts.

    >>> train_bpe("aaabdaaabac", vocab_size=259, progress=False)
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    """
    _check_vocab_size(vocab_size)
    chunk_frequency = Counter(pretokenize(text))
    words = [list(chunk.encode("utf-8")) for chunk in chunk_frequency]  # each distinct chunk, as ids
    frequencies = list(chunk_frequency.values())

    counts: dict[Pair, int] = {}
    chunks_with: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words it (once) occurred in
    for index, (word, frequency) in enumerate(zip(words, frequencies)):
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + frequency
            chunks_with[pair].add(index)

    # Heap entries are (-count, pair): heapq pops the smallest, i.e. the highest count, then the smallest pair,
    # which is most_frequent_pair's rule. Entries go stale when a merge lowers a count; they are fixed when popped.
    heap = [(-count, pair) for pair, count in counts.items()]
    heapq.heapify(heap)

    merges = {}
    for new_id in tqdm(range(256, vocab_size), desc="training BPE", disable=not progress):
        pair = _pop_most_frequent(heap, counts)
        if pair is None:
            break
        merges[pair] = new_id
        new_pairs = set()
        for index in chunks_with.pop(pair):
            word = words[index]
            merged = merge_pair(word, pair, new_id)
            if len(merged) == len(word):
                continue  # an earlier merge already consumed this chunk's occurrences
            # Recount this chunk's pairs: simpler than patching neighbours, and chunks are only a few ids long.
            frequency = frequencies[index]
            for old in zip(word, word[1:]):
                counts[old] -= frequency
            for new in zip(merged, merged[1:]):
                counts[new] = counts.get(new, 0) + frequency
                if new_id in new:
                    chunks_with[new].add(index)
                    new_pairs.add(new)
            words[index] = merged
        # Only pairs containing new_id can have gained count; all others only lost some.
        for new in new_pairs:
            heapq.heappush(heap, (-counts[new], new))
    return merges


def _pop_most_frequent(heap: list[tuple[int, Pair]], counts: dict[Pair, int]) -> Pair | None:
    """Pop heap entries until one carries its pair's current count; None when no pair is left.

    Counts only ever fall after an entry is pushed, so a stale entry overstates its count: it is pushed back with
    the true count (if still positive) and the search goes on. An up-to-date entry on top is the true maximum.
    """
    while heap:
        negative_count, pair = heapq.heappop(heap)
        count = counts[pair]
        if count == -negative_count:
            return pair
        if count > 0:
            heapq.heappush(heap, (-count, pair))
    return None


def apply_merges(ids: list[int] | bytes, merges: dict[Pair, int],
                 on_merge: Callable[[Pair, int], None] | None = None) -> list[int]:
    """Encode one chunk: repeatedly merge the adjacent pair that was learned first (the smallest new id).

    Merges are replayed in training order because later merges were learned on text where earlier ones had
    already been applied. `on_merge(pair, new_id)`, if given, is called for every merge (to show the work).

    >>> apply_merges([97, 97, 97, 98], {(97, 97): 256, (97, 98): 257, (256, 257): 258})
    [258]
    """
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda pair: merges.get(pair, float("inf")))
        if pair not in merges:
            break  # no adjacent pair was ever merged: this chunk is done
        if on_merge is not None:
            on_merge(pair, merges[pair])
        ids = merge_pair(ids, pair, merges[pair])
    return ids


def show_token(token: bytes) -> str:
    r"""A token, printable: its text when it is valid UTF-8, else its bytes (a token can end inside a character).

    >>> print(show_token(b" the"), show_token("é".encode("utf-8")[:1]))
    ' the' b'\xc3'
    """
    try:
        return repr(token.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(token)


class BPETokenizer:
    """Encodes text with learned merges {pair: new id}; `vocab` maps every id to its bytes.

    >>> tokenizer = BPETokenizer({(104, 105): 256})  # one merge: "h" + "i" -> "hi"
    >>> tokenizer.encode("hi hi!"), tokenizer.vocab[256]  # chunks "hi", " hi", "!"
    ([256, 32, 256, 33], b'hi')
    """

    def __init__(self, merges: dict[Pair, int]):
        self.merges = dict(merges)
        self.vocab = {byte: bytes([byte]) for byte in range(256)}
        for (first, second), new_id in sorted(self.merges.items(), key=lambda item: item[1]):
            self.vocab[new_id] = self.vocab[first] + self.vocab[second]
        self._chunk_cache: dict[str, list[int]] = {}  # chunk -> ids: text repeats, so most chunks are seen before

    def encode(self, text: str) -> list[int]:
        """Ids of the text: split into chunks, then apply the merges inside each chunk.

        >>> BPETokenizer({}).encode("hé")  # no merges: just the UTF-8 bytes
        [104, 195, 169]
        """
        ids = []
        cache = self._chunk_cache
        for chunk in pretokenize(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = cache[chunk] = apply_merges(chunk.encode("utf-8"), self.merges)
            ids.extend(chunk_ids)
        return ids

    def decode(self, ids: list[int]) -> str:
        """The text of some ids. Bytes that are not valid UTF-8 (e.g. half an emoji) become "\ufffd".

        >>> BPETokenizer({}).decode([104, 195, 169]), BPETokenizer({}).decode([104, 195])
        ('hé', 'h\ufffd')
        """
        return b"".join(self.vocab[id] for id in ids).decode("utf-8", errors="replace")

    def encode_and_show_work(self, text: str) -> list[int]:
        """Like `encode`, but prints every chunk and every merge applied to it, in order.

        >>> BPETokenizer({(104, 105): 256}).encode_and_show_work("hi")
        chunk 'hi', bytes [104, 105]
          merge 'h' + 'i' -> 'hi' (id 256)
        [256]
        """
        ids = []
        for chunk in pretokenize(text):
            print(f"chunk {chunk!r}, bytes {list(chunk.encode('utf-8'))}")
            ids.extend(apply_merges(chunk.encode("utf-8"), self.merges, on_merge=self._print_merge))
        return ids

    def _print_merge(self, pair: Pair, new_id: int) -> None:
        first, second = pair
        print(f"  merge {show_token(self.vocab[first])} + {show_token(self.vocab[second])}"
              f" -> {show_token(self.vocab[new_id])} (id {new_id})")

    def save(self, file: str | Path) -> None:
        """Write the merges to a JSON file, in training order: [[first, second, new id], ...]."""
        rows = [[first, second, new_id] for (first, second), new_id in self.merges.items()]
        Path(file).write_text(json.dumps({"merges": rows}), encoding="utf-8")

    @classmethod
    def load(cls, file: str | Path) -> BPETokenizer:
        """A tokenizer from a file written by `save`."""
        rows = json.loads(Path(file).read_text(encoding="utf-8"))["merges"]
        return cls({(first, second): new_id for first, second, new_id in rows})
