"""The fast BPE trainer: the same merges as `minitf.bpe.train_simple`, in about a second.

The textbook loop recounts every pair of every chunk after every merge. Here the pairs
are counted once, and each merge then updates the counts of only the chunks that
contain the merged pair (an index from each pair to those chunks says which). The next
pair to merge comes from a max-heap of pair counts that is repaired lazily.

Left out: parallel counting, and positions inside a chunk. With `pattern=None` the
whole text is one chunk, so each merge still scans all of it: fine for lesson-sized
texts, slow for megabytes.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping
from itertools import pairwise

from tqdm import tqdm

Pair = tuple[int, int]


def heap_key(token: bytes) -> str:
    """A string whose ascending order is the descending order of the byte strings.

    `heapq` pops the smallest entry, but ties must go to the lexicographically greatest
    `(bytes_a, bytes_b)`. So each byte x becomes chr(255 - x), and the token ends with
    chr(256), which sorts after every mirrored byte: a prefix ("ab" < "abc") now sorts
    after the longer token. Since chr(256) appears only at the end, concatenating the
    keys of a and b orders pairs like the tuple (bytes_a, bytes_b), reversed.
    """
    return bytes(255 - x for x in token).decode("latin-1") + chr(256)


def train_merges(
    chunks: Mapping[bytes, int], n_merges: int, *, progress: bool = False
) -> list[Pair]:
    """Learn up to `n_merges` merges from chunk counts {chunk bytes: occurrences}.

    Returns the merged pairs in rank order; merge i creates token 256 + i. Among equally
    frequent pairs the lexicographically greatest (bytes_a, bytes_b) wins. Stops early
    when no pair is left (every chunk is a single token).
    """
    words = [list(chunk) for chunk in chunks]  # each unique chunk as a list of token ids
    freqs = list(chunks.values())  # how often each unique chunk occurs in the text
    vocab = [bytes([i]) for i in range(256)]
    keys = [heap_key(token) for token in vocab]

    # Count every adjacent pair once, and remember which words contain it.
    counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)
    for w, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in pairwise(word):
            counts[pair] += freq
            where[pair].add(w)

    # Max-heap of (count, pair) as a min-heap of (-count, mirrored bytes, pair). Entries
    # are never updated in place: a count that grows gets a fresh entry, and an entry
    # whose count has shrunk is noticed when it reaches the top and pushed back.
    heap = [(-count, keys[a] + keys[b], (a, b)) for (a, b), count in counts.items()]
    heapq.heapify(heap)

    merges: list[Pair] = []
    bar = tqdm(total=n_merges, desc="bpe merges", unit="merge", disable=not progress)
    while len(merges) < n_merges and heap:
        neg_count, key, pair = heapq.heappop(heap)
        count = counts.get(pair, 0)
        if count != -neg_count:  # stale entry
            if 0 < count < -neg_count:
                heapq.heappush(heap, (-count, key, pair))
            continue

        a, b = pair
        new = 256 + len(merges)
        merges.append(pair)
        vocab.append(vocab[a] + vocab[b])
        keys.append(heap_key(vocab[new]))
        grown = merge_in_words(words, freqs, where.pop(pair), pair, new, counts, where)
        del counts[pair]
        for p in grown:
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], keys[p[0]] + keys[p[1]], p))
        bar.update()
    bar.close()
    return merges


def merge_in_words(
    words: list[list[int]],
    freqs: list[int],
    word_ids: set[int],
    pair: Pair,
    new: int,
    counts: dict[Pair, int],
    where: dict[Pair, set[int]],
) -> set[Pair]:
    """Replace `pair` by `new` in the given words, updating pair counts as we go.

    Scanning left to right, each merge at position i turns (prev, a) into (prev, new)
    and (b, next) into (new, next). The word is merged in place, so when occurrences
    touch ("a b a b" -> "X X") prev is already X: the (X, a) counted by the first merge
    is taken back by the second, which adds (X, X). Returns the pairs that gained
    counts (they all contain `new`); `where` learns which words hold them.
    """
    a, b = pair
    grown: set[Pair] = set()
    for w in word_ids:
        word, freq = words[w], freqs[w]
        i = 0
        while True:
            try:
                i = word.index(a, i, len(word) - 1)  # next `a` that has a token after it
            except ValueError:
                break
            if word[i + 1] != b:
                i += 1
                continue
            if i > 0:
                prev = word[i - 1]
                counts[prev, a] -= freq
                counts[prev, new] += freq
                where[prev, new].add(w)
                grown.add((prev, new))
            if i + 2 < len(word):
                nxt = word[i + 2]
                counts[b, nxt] -= freq
                counts[new, nxt] += freq
                where[new, nxt].add(w)
                grown.add((new, nxt))
            word[i : i + 2] = [new]
            i += 1
    return grown
