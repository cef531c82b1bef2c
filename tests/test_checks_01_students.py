"""Notebook 01's BPE checks against mistakes a student makes, written from the student notebook: each is named
under the public seed and secret seeds, and valid code written differently passes under both."""

import itertools
import operator
import unicodedata
from collections import Counter, defaultdict

import numpy as np

from check_family import student_tests
from coursekit import checks
from coursekit.bpe import merge_pair, pair_counts
from test_checks_tokenization import decode_recursively, merge_from_the_right


def counts_without_overlaps(ids):
    """pair_counts that skips the second of two overlapping occurrences: [a, a, a] has (a, a) once."""
    counts, i = {}, 0
    while i + 1 < len(ids):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
        i += 2 if i + 2 < len(ids) and (ids[i + 1], ids[i + 2]) == pair else 1
    return counts


def unchanged_list_when_absent(ids, pair, new_id):
    return ids if pair not in set(zip(ids, ids[1:])) else merge_pair(ids, pair, new_id)


def trainer(count=pair_counts, merge=merge_pair, choose=lambda counts: max(counts, key=counts.get),
            new_ids=lambda vocab_size: range(256, vocab_size), to_ids=lambda text: list(text.encode("utf-8"))):
    """The notebook's train_bpe with one part replaced."""
    def train_bpe(text, vocab_size):
        ids, merges = to_ids(text), {}
        for new_id in new_ids(vocab_size):
            counts = count(ids)
            if not counts:
                break
            pair = choose(counts)
            merges[pair] = new_id
            ids = merge(ids, pair, new_id)
        return merges
    return train_bpe


def encoder(choose, to_ids=lambda text: list(text.encode("utf-8"))):
    """bpe_encode picking the pair to merge with choose(counts, merges)."""
    def bpe_encode(text, merges):
        ids = to_ids(text)
        while len(ids) >= 2:
            pair = choose(pair_counts(ids), merges)
            if pair not in merges:
                break
            ids = merge_pair(ids, pair, merges[pair])
        return ids
    return bpe_encode


def encode_in_learning_order_comparing_identity(text, merges):
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():  # the pair is the key's ids, other objects than the ids merged earlier
        ids = merge_comparing_identity(ids, pair, new_id)
    return ids


def lowest_rank(counts, merges):
    return min(counts, key=lambda pair: merges.get(pair, float("inf")))


by_rank = encoder(lowest_rank)


def leftmost_once(text, merges):
    """Merge the first adjacent pair found in merges, at that position only, and scan again."""
    ids, changed = list(text.encode("utf-8")), True
    while changed:
        changed = False
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) in merges:
                ids, changed = ids[:i] + [merges[ids[i], ids[i + 1]]] + ids[i + 2:], True
                break
    return ids


def decoder(errors="replace", per_token=False, pairs=lambda merges: merges.items(), encoding="utf-8",
            tokens=lambda ids: ids):
    def bpe_decode(ids, merges):
        token_bytes = {i: bytes([i]) for i in range(256)}
        for (first, second), new_id in pairs(merges):
            token_bytes[new_id] = token_bytes.get(first, b"?") + token_bytes.get(second, b"?")
        if per_token:
            return "".join(token_bytes[i].decode(encoding, errors=errors) for i in tokens(ids))
        return b"".join(token_bytes[i] for i in tokens(ids)).decode(encoding, errors=errors)
    return bpe_decode


def merges_in_learning_order(text, merges):
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = merge_pair(ids, pair, new_id)
    return ids


def count_with_defaultdict(ids):
    counts = defaultdict(int)
    for i in range(len(ids) - 1):
        counts[ids[i], ids[i + 1]] += 1
    return dict(counts)


def merge_recursively(ids, pair, new_id):
    if len(ids) < 2:
        return list(ids)
    if (ids[0], ids[1]) == pair:
        return [new_id] + merge_recursively(ids[2:], pair, new_id)
    return [ids[0]] + merge_recursively(ids[1:], pair, new_id)


def merge_by_index(ids, pair, new_id, same=operator.eq):
    out, skip = [], False
    for i, current in enumerate(ids):
        if skip:
            skip = False
        elif i + 1 < len(ids) and same(ids[i], pair[0]) and same(ids[i + 1], pair[1]):
            out.append(new_id)
            skip = True
        else:
            out.append(current)
    return out


def merge_comparing_identity(ids, pair, new_id):
    """merge_pair with `is` for ==: right only for ids that are one object (Python shares those of -5..256)."""
    return merge_by_index(ids, pair, new_id, same=operator.is_)


def first_occurrence_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


def as_text(ids, pair, new_id):
    joined = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(i) for i in joined.split()]


def counts_popping(ids):
    """Counts the pairs by popping the ids from the front: the caller's list is empty afterwards."""
    counts = {}
    while len(ids) > 1:
        pair = (ids[0], ids[1])
        counts[pair] = counts.get(pair, 0) + 1
        ids.pop(0)
    return counts


def counts_cached_by_length(ids, _cache={}):
    if len(ids) not in _cache:
        _cache[len(ids)] = dict(Counter(zip(ids, ids[1:])))
    return _cache[len(ids)]


def train_with_kept_merges(text, vocab_size, merges={}):
    """merges={} is created once: every call starts from the merges of the calls before."""
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = merge_pair(ids, pair, new_id)
    for new_id in range(256 + len(merges), vocab_size):
        counts = pair_counts(ids)
        if not counts:
            break
        pair = max(counts, key=counts.get)
        merges[pair] = new_id
        ids = merge_pair(ids, pair, new_id)
    return merges


def encode_popping_merges(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = lowest_rank(pair_counts(ids), merges)
        if pair not in merges:
            break
        ids = merge_pair(ids, pair, merges.pop(pair))  # the caller's merges lose an entry
    return ids


def encode_cached_by_text(text, merges, _cache={}):
    if text not in _cache:
        _cache[text] = by_rank(text, merges)
    return _cache[text]


def encode_line_by_line(text, merges):
    lines = text.split("\n")
    return [i for k, line in enumerate(lines) for i in by_rank(line, merges) + ([10] if k < len(lines) - 1 else [])]


def encode_stopping_at_two(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) > 2:  # one too early: the last two ids may still merge
        pair = lowest_rank(pair_counts(ids), merges)
        if pair not in merges:
            break
        ids = merge_pair(ids, pair, merges[pair])
    return ids


OTHER_MERGES = trainer()("the quick brown fox jumps over the lazy dog; " * 4, 256 + 40)  # e.g. the notebook's own


def decode_popping(ids, merges):
    vocab, out = {i: bytes([i]) for i in range(256)}, b""
    for (first, second), new_id in merges.items():
        vocab[new_id] = vocab[first] + vocab[second]
    while ids:
        out += vocab[ids.pop(0)]
    return out.decode("utf-8", errors="replace")


def decode_with_the_first_vocabulary(ids, merges, _vocab={}):
    if not _vocab:
        _vocab.update({i: bytes([i]) for i in range(256)})
        for (first, second), new_id in merges.items():
            _vocab[new_id] = _vocab[first] + _vocab[second]
    return b"".join(_vocab[i] for i in ids).decode("utf-8", errors="replace")


def decode_skipping_unknown(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for (first, second), new_id in merges.items():
        vocab[new_id] = vocab[first] + vocab[second]
    return b"".join(vocab.get(i, b"") for i in ids).decode("utf-8", errors="replace")


def decode_by_unmerging(ids, merges):
    """Undo the merges, newest first, until only bytes are left: an unknown id ends in bytes()'s ValueError."""
    ids = list(ids)
    for (first, second), new_id in sorted(merges.items(), key=lambda item: -item[1]):
        ids = [part for i in ids for part in ((first, second) if i == new_id else (i,))]
    return bytes(ids).decode("utf-8", errors="replace")


STUDENT_BUGS = {
    "pair_counts": [
        ("keys should be pairs", lambda ids: dict(Counter(ids))),
        ("the first or the last pair is missing|each count was set to 1", lambda ids: {p: 1 for p in zip(ids, ids[1:])}),
        ("should be", lambda ids: pair_counts(ids + ids[:1])),
        ("should be", lambda ids: {p: sum(1 for i in range(0, len(ids) - 1, 2) if tuple(ids[i:i + 2]) == p)
                                   for p in zip(ids, ids[1:])}),
        ("keys should be pairs", lambda ids: {f"{a},{b}": n for (a, b), n in pair_counts(ids).items()}),
        ("overlapping pairs count too", lambda ids: {p: list(zip(ids, ids[1:])).count(p) - (p[0] == p[1])
                                                     for p in zip(ids, ids[1:])}),
        ("should be", lambda ids: pair_counts(sorted(ids))),
        ("should be", lambda ids: pair_counts(ids[::-1])),
        ("the first or the last pair is missing", lambda ids: pair_counts(ids[:-1])),
        ("a whole number \\(int\\), but the count of \\(1, 2\\) is 2.5 \\(float\\)",
         lambda ids: {pair: n + 0.5 for pair, n in Counter(zip(ids, ids[1:])).items()}),
        ("a whole number \\(int\\), but the count of \\(1, 2\\) is 2.0 \\(float\\)",
         lambda ids: {pair: float(n) for pair, n in Counter(zip(ids, ids[1:])).items()}),
        ("the ids of a pair should be ints.*\\(1.25, 2.25\\)",
         lambda ids: {(a + 0.25, b + 0.25): n for (a, b), n in Counter(zip(ids, ids[1:])).items()}),
        ("changed the list of ids it was given.*train_bpe merges those same ids", counts_popping),
        ("returned the counts of other ids given in another call", counts_cached_by_length),
        ("only the first 64 of the \\d+ ids were counted", lambda ids: pair_counts(ids[:64])),
    ],
    "merge_pair": [
        ("merged as text \\(str.replace\\)", as_text),
        ("skip both ids of the pair", lambda ids, pair, n: [n if (a, b) == pair else a for a, b in zip(ids, ids[1:] + [None])]),
        ("only the first occurrence was replaced", first_occurrence_only),
        ("scan from the left", lambda ids, pair, n: merge_pair(ids[::-1], pair[::-1], n)[::-1]),
        ("the last id is dropped", lambda ids, pair, n: merge_pair(ids[:-1], pair, n) if tuple(ids[-2:]) != pair
         else merge_pair(ids, pair, n)),
        ("should return a new list, got a tuple", lambda ids, pair, n: tuple(merge_pair(ids, pair, n))),
        ("skip both ids of the pair", lambda ids, pair, n: [n if x == pair[0] else x for x in ids]),
        ("should be", lambda ids, pair, n: merge_pair(ids, (pair[1], pair[0]), n)),
        ("returned the very list it was given", unchanged_list_when_absent),
        ("merge_pair of \\d+ ids should return \\d+ ids, got \\d+: merge along the whole list",
         lambda ids, pair, n: merge_pair(ids[:64], pair, n)),
        ("compare ids with ==, not is", merge_comparing_identity),
    ],
    "train_bpe": [
        ("least frequent pairs.*not min", trainer(choose=lambda counts: min(counts, key=counts.get))),
        ("should learn \\d+ merges, got \\d+", trainer(new_ids=lambda v: range(255, v))),
        ("should learn \\d+ merges, got \\d+", trainer(new_ids=lambda v: range(257, v))),
        ("learned on characters \\(code points, ord", trainer(to_ids=lambda t: [ord(c) for c in t])),
        ("learned on characters|merge 0 is", trainer(to_ids=lambda t: list(t.encode("latin-1", errors="replace")))),
        ("should learn \\d+ merges, got \\d+", trainer(new_ids=lambda v: range(256, v - 1))),
        ("should learn \\d+ merges, got \\d+", trainer(new_ids=lambda v: range(256, v + 1))),
        ("should learn 7 merges, got 20|should learn \\d+ merges", trainer(new_ids=lambda v: range(256, 276))),
        ("should learn \\d+ merges, got 1", trainer(merge=lambda ids, pair, new_id: ids)),
        ("where pairs overlap in runs of one byte", trainer(merge=merge_from_the_right)),
        ("where pairs overlap in runs of one byte", trainer(count=counts_without_overlaps)),
        ("a new id, all ints .*256.5", lambda text, size: {p: n + 0.5 for p, n in trainer()(text, size).items()}),
        ("a new id, all ints .*\\.5, ", lambda text, size: {(a + 0.5, b): n for (a, b), n in trainer()(text, size).items()}),
        ("should learn \\d+ merges, got 44", trainer(new_ids=lambda v: range(256, min(v, 300)))),
        ("on a passage of \\d+ characters", trainer(to_ids=lambda t: list(t[:200].encode("utf-8")))),
        ("learned on the text without the whitespace at its ends \\(strip\\)",
         trainer(to_ids=lambda t: list(t.strip().encode("utf-8")))),
        ("learned on the text without the (whitespace|newline) at its end",
         trainer(to_ids=lambda t: list(t.rstrip("\n").encode("utf-8")))),
        ("learned on the text lowercased", trainer(to_ids=lambda t: list(t.lower().encode("utf-8")))),
        ("learned on UTF-16 bytes", trainer(to_ids=lambda t: list(t.encode("utf-16")))),
        ("is the largest pair, not the most frequent one.*max's key argument", trainer(choose=max)),
        ("counted with a step of 2", trainer(count=lambda ids: dict(Counter(zip(ids[::2], ids[1::2]))))),
        ("the second most frequent pair", trainer(choose=lambda counts: sorted(counts, key=counts.get)[-2]
                                                  if len(counts) > 1 else next(iter(counts)))),
        ("merges (were )?kept from an earlier call", train_with_kept_merges),
    ],
    "bpe_encode": [
        ("no merge was applied.*not the text's most frequent pair",
         encoder(lambda counts, merges: max(counts, key=counts.get))),
        ("highest new id first", encoder(lambda counts, merges: max((p for p in counts if p in merges),
                                                                    key=merges.get, default=next(iter(counts))))),
        ("each character was encoded on its own|Encoding each character on its own", lambda text, merges: [
            i for char in text for i in by_rank(char, merges)]),
        ("leftmost pair that is in merges first", lambda text, merges: leftmost_once(text, merges)),
        ("leftmost pair that is in merges first", encoder(  # pair_counts lists pairs in order of first appearance
            lambda counts, merges: next((p for p in counts if p in merges), next(iter(counts))))),
        ("no merge was applied", encoder(lambda counts, merges: next(iter(counts)))),
        ("should be", encoder(lowest_rank,
                              to_ids=lambda t: list(t.encode("latin-1", errors="replace")))),
        ("code points \\(ord\\)|should be", encoder(lowest_rank,
                                                   to_ids=lambda t: [ord(c) for c in t])),
        ("should be", lambda text, merges: by_rank(text.strip(), merges)),
        ("should be", lambda text, merges: by_rank(text.lower(), merges)),
        ("should be", lambda text, merges: merges_in_learning_order(text, dict(reversed(list(merges.items()))))),
        ("changed the merges it was given", encode_popping_merges),
        ("that is what other merges give", encode_cached_by_text),
        ("each line was encoded on its own.*across lines", encode_line_by_line),
        ("whitespace at the ends? of the text was dropped|newlines at the end",
         lambda text, merges: by_rank(text.rstrip("\n"), merges)),
        ("the text was encoded as Latin-1",
         encoder(lowest_rank, to_ids=lambda t: list(t.encode("latin-1", errors="replace")))),
        ("non-ASCII characters are missing", encoder(lowest_rank, to_ids=lambda t: list(t.encode("ascii", "ignore")))),
        ("(is no token of the merges given|with the merges given, your ids spell).*not the notebook's merges",
         lambda text, merges: by_rank(text, OTHER_MERGES)),
        ("stopped with two ids left", encode_stopping_at_two),
        ("should return a list of ints, got \\[", lambda text, merges: [float(i) for i in by_rank(text, merges)]),
        ("compare ids with ==, not is", encode_in_learning_order_comparing_identity),
        ("the text was normalised \\(unicodedata.normalize\\('NFC', text\\)\\).*raw UTF-8 bytes",
         lambda text, merges: by_rank(unicodedata.normalize("NFC", text), merges)),
        ("the text was normalised \\(unicodedata.normalize\\('NFKC', text\\)\\)",
         lambda text, merges: by_rank(unicodedata.normalize("NFKC", text), merges)),
    ],
    "bpe_decode": [
        ("should be", decoder(per_token=True)),
        ("crashed with UnicodeDecodeError.*errors='replace'", decoder(errors="strict")),
        ("errors='ignore' drops invalid bytes", decoder(errors="ignore")),
        ("should be 'the theme'", decoder(pairs=lambda merges: list(merges.items())[::-1])),
        ("should be 'the theme'", decoder(pairs=lambda merges: [((b, a), n) for (a, b), n in merges.items()])),
        ("should be", lambda ids, merges: decoder()(ids, merges).strip()),
        ("should be", decoder(encoding="latin-1")),
        ("should be", decoder(tokens=lambda ids: list(ids)[:-1])),
        ("changed the list of ids it was given", decode_popping),
        ("that is what other merges give", decode_with_the_first_vocabulary),
        ("decoded as ascii", decoder(encoding="ascii")),
        ("should raise an error because \\d+ is no id", decode_skipping_unknown),
    ],
}

MORE_VALID = {
    "pair_counts": [lambda ids: dict(Counter(zip(ids, ids[1:]))), count_with_defaultdict,
                    lambda ids: dict(Counter(zip(np.array(ids)[:-1], np.array(ids)[1:]))),  # numpy ints as they are
                    lambda ids: dict(Counter(itertools.pairwise(ids))),
                    lambda ids: {pair: n for pair, n in Counter(tuple(ids[i:i + 2]) for i in range(len(ids) - 1)).items()}],
    "merge_pair": [merge_recursively, merge_by_index, lambda ids, pair, n: merge_by_index(list(ids), tuple(pair), n)],
    "train_bpe": [trainer(count=lambda ids: dict(Counter(zip(ids, ids[1:])))), trainer(merge=merge_recursively),
                  trainer(count=count_with_defaultdict, merge=merge_by_index)],
    "bpe_encode": [merges_in_learning_order,
                   encoder(lambda counts, merges: min(counts, key=lambda p: (p not in merges, merges.get(p, 0)))),
                   lambda text, merges: by_rank(text, dict(sorted(merges.items(), key=lambda item: -item[1])))],
    "bpe_decode": [decode_recursively, decoder(pairs=lambda merges: sorted(merges.items(), key=lambda item: item[1])),
                   lambda ids, merges: decode_recursively(list(ids), dict(merges)), decode_by_unmerging],
}

CHECKS = {name: getattr(checks, f"check_{name}") for name in STUDENT_BUGS}

(test_more_valid_alternatives_pass_under_public_and_secret_seeds,
 test_each_student_mistake_is_named_under_the_public_and_every_secret_seed,
 test_a_stub_scores_nothing,
 test_every_exercise_has_a_broad_set) = student_tests(CHECKS, STUDENT_BUGS, MORE_VALID, secret_seeds=(1, 2, 3))
