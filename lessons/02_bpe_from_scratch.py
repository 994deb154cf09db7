# %% [markdown]
# # Lesson 2: BPE from scratch
#
# **Goal:** write the byte-pair-encoding training loop and the encoder yourself, then see
# what tokens it learns from real text, and that a token hides the letters it is made of.
#
# Lesson 1 showed that text is bytes. Bytes make long sequences (one step per byte), so
# tokenizers merge frequent neighbours into new tokens. *BPE* (see the
# [glossary](../docs/glossary.md#bpe-merge)) does it greedily: count every adjacent pair,
# merge the most frequent into a new id, repeat.

# %%
import argparse  # argparse ... textwrap: standard-library modules whose source is our corpus
import collections
import csv
import dataclasses
import inspect
import json.decoder
import pathlib
import textwrap
import time
from collections import Counter

import matplotlib.pyplot as plt

from minitf import bpe, course
from minitf.course.check import check_here

course.setup_matplotlib()
QUICK = course.quick_mode()

# %% [markdown]
# ## One merge by hand
#
# Start from the bytes of a tiny string. Count the adjacent pairs and merge the most
# frequent into id 256 (ids 0-255 are the raw bytes).

# %%
WORD = "aaabdaaabac"
ids = list(WORD.encode("utf-8"))
pairs = Counter(zip(ids, ids[1:], strict=False))
print("ids:", ids)
print("pair counts:", {(chr(a), chr(b)): n for (a, b), n in pairs.most_common()})
best = max(pairs, key=pairs.get)
print("merge", best, "->", 256, ":", bpe.merge(ids, best, 256))

# %% [markdown]
# Note that `aaa` holds the pair `aa` twice, overlapping, yet a left-to-right merge turns
# it into `256, a`: the count can overestimate what one merge removes. Everyone
# (GPT-2, tiktoken, minitf) counts this way.
#
# ### Exercise 1: `pair_counts`
# Return a dict `{(a, b): how many times b follows a}` for a list of ids.
#
# ### Exercise 2: `merge_pair`
# Return a new list where every non-overlapping occurrence of `pair`, scanning left to
# right, is replaced by `new_id`.

# %%
def pair_counts(ids: list[int]) -> dict[tuple[int, int], int]:
    """Count adjacent pairs: [1, 2, 1, 2] -> {(1, 2): 2, (2, 1): 1}."""
    ### BEGIN SOLUTION
    counts: dict[tuple[int, int], int] = {}
    for pair in zip(ids, ids[1:], strict=False):
        counts[pair] = counts.get(pair, 0) + 1
    return counts
    ### END SOLUTION


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each occurrence of `pair`, left to right: ([1, 1, 1], (1, 1), 9) -> [9, 1]."""
    ### BEGIN SOLUTION
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
    ### END SOLUTION


# %%
check_here(2, globals(), "pair_counts")
check_here(2, globals(), "merge_pair")

# %% [markdown]
# ### Exercise 3: `train_merges`, the textbook loop
#
# Repeat `n_merges` times: count the pairs of the current ids, pick the most frequent,
# record it, and merge it everywhere with the next id (256, 257, ...). Return the list of
# merged pairs. Stop early if no pair is left.
#
# **Ties.** Several pairs often share the top count. To get the same merges as minitf and
# GPT-2-style trainers, keep a list `vocab` of each id's bytes (`vocab[i] = bytes([i])` for
# bytes, `vocab[a] + vocab[b]` for a merge) and pick the pair with the largest
# `(count, vocab[a], vocab[b])`.

# %%
def train_merges(text: str, n_merges: int) -> list[tuple[int, int]]:
    """Learn BPE merges on the UTF-8 bytes of `text` (no pre-splitting into words)."""
    ### BEGIN SOLUTION
    ids = list(text.encode("utf-8"))
    vocab = [bytes([i]) for i in range(256)]
    merges = []
    for new_id in range(256, 256 + n_merges):
        counts = pair_counts(ids)
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))
        merges.append(best)
        vocab.append(vocab[best[0]] + vocab[best[1]])
        ids = merge_pair(ids, best, new_id)
    return merges
    ### END SOLUTION


# %%
check_here(2, globals(), "train_merges")

# %% [markdown]
# ## Encoding new text with the merges
#
# The merges are the tokenizer. To encode any text, even text the trainer never saw,
# start from its bytes and replay the merges *in the order they were learned*: find the
# adjacent pair whose merge came earliest (the lowest *rank*, its index in the merge
# list), merge it everywhere, and repeat until no adjacent pair is a merge. Merge `k`
# makes id `256 + k`. Decoding goes back: each id stands for a byte string (`vocab` as
# in exercise 3), and the bytes of all ids joined are UTF-8 text.
#
# ### Exercise 4: `encode` and `decode`
# `encode(text, merges)` returns the ids of `text` (its UTF-8 bytes, merged by rank as
# above; no pre-splitting into words). `decode(ids, merges)` returns the text, decoding
# the bytes with `errors="replace"` (a cut can fall inside a character).

# %%
def encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Text -> ids with BPE merges applied by rank (merge k makes id 256 + k)."""
    ### BEGIN SOLUTION
    rank = {tuple(pair): k for k, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pairs = set(zip(ids, ids[1:], strict=False))
        best = min(pairs, key=lambda p: rank.get(p, len(merges)))
        if best not in rank:
            break  # no adjacent pair is a merge
        ids = merge_pair(ids, best, 256 + rank[best])
    return ids
    ### END SOLUTION


def decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    """Ids -> text: each id's bytes, joined and decoded as UTF-8."""
    ### BEGIN SOLUTION
    vocab = [bytes([i]) for i in range(256)]
    for a, b in merges:
        vocab.append(vocab[a] + vocab[b])
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
    ### END SOLUTION


# %%
check_here(2, globals(), "encode_decode")

# %% [markdown]
# On the string we started from, with the three merges `aa`, `aaa`, `aaab`: the merges
# compress 11 bytes into 5 tokens, and `decode` gives the string back. `minitf.bpe.Tokenizer`
# does the same (faster, and chunk by chunk when it pre-splits words):

# %%
word_merges = train_merges(WORD, 3)
word_ids = encode(WORD, word_merges)
print(f"{WORD!r} -> {word_ids} -> {decode(word_ids, word_merges)!r}")
print("minitf:", bpe.Tokenizer(word_merges, pattern=None).encode(WORD))

# %% [markdown]
# ## The fast loop
#
# The textbook loop recounts the whole text after every merge: `n_merges` passes. minitf
# keeps both versions: `bpe.train_simple` is the textbook loop (plus one trick: text is
# first split into words, and each distinct word is counted once), and `Tokenizer.train`
# updates only the counts a merge changes. Same merges, very different speed.
#
# Our corpus: the source code of a few Python standard-library modules (always
# installed, so everyone has the same kind of text).

# %%
corpus = "".join(inspect.getsource(m) for m in
                 [textwrap, argparse, pathlib, json.decoder, csv, collections])
held_out = inspect.getsource(dataclasses)  # text the tokenizer never saw
print(f"corpus: {len(corpus):,} characters; held-out: {len(held_out):,}")

small = corpus[: 6_000 if QUICK else 20_000]
n_small = 40 if QUICK else 80
start = time.perf_counter()
textbook = bpe.train_simple(small, 256 + n_small, pattern=None)
t_textbook = time.perf_counter() - start
start = time.perf_counter()
fast = bpe.Tokenizer.train(small, 256 + n_small, pattern=None)
t_fast = time.perf_counter() - start
print(f"{n_small} merges on {len(small):,} characters: textbook {t_textbook:.2f} s, "
      f"fast {t_fast:.2f} s, same merges: {textbook.merges == fast.merges}")

# %% [markdown]
# ## What tokens does a corpus produce?
#
# Real tokenizers first split text into words with a regex (so a token never spans
# `"a."` and `" the"`), then run BPE inside the words. Train on the whole corpus:

# %%
vocab_size = 512 if QUICK else 1024
tok = bpe.Tokenizer.train(corpus, vocab_size, pattern="gpt4")
print("first 40 merges:", [tok.token_str(256 + i) for i in range(40)])
longest = sorted(range(256, tok.vocab_size), key=lambda i: -len(tok.token_bytes(i)))[:12]
print("longest tokens:", [tok.token_str(i) for i in longest])

# %% [markdown]
# Python code is mostly indentation: the first merges are runs of spaces (`ĠĠ`, `ĠĠĠĠ`),
# then `self`, `:\n`, `return`. A tokenizer is a summary of the text it was trained on.
#
# ## Compression against vocabulary size
#
# Each merge shortens the text a little. Measure bytes per token on the held-out module.

# %%
sizes = [256, 384, 512, 1024] if QUICK else [256, 384, 512, 1024, 2048, 4096]
held_bytes = len(held_out.encode("utf-8"))
ratio = {}
for size in sizes:
    t = bpe.Tokenizer.train(corpus, size, pattern="gpt4")
    ratio[size] = held_bytes / len(t.encode(held_out))
    print(f"vocab {size:5d}: {ratio[size]:.2f} bytes per token")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
ax.plot(sizes, [ratio[s] for s in sizes], marker="o")
ax.set_xscale("log", base=2)
ax.set_xlabel("vocabulary size (256 bytes + merges)")
ax.set_ylabel("bytes per token on held-out code")
ax.set_title("Each doubling of the vocabulary buys less compression")
course.save_figure(fig, "02_bpe_compression.png")

# %% [markdown]
# ## What does a token hide?
#
# A word the corpus rarely contains is written with whatever pieces it did make
# frequent; a word it saw often becomes one token. GPT-2, trained on web text, has
# `" strawberry"` (with its leading space) as a single token (lesson 1 shows where to get
# its files; without them the GPT-2 line is skipped). Either way, the model receives ids,
# not letters: nothing in the id of a multi-letter token says which letters it holds, or
# how many `r`s. A model can only learn that, token by token. That is why "how many r's
# in strawberry?" is hard for a model, and lesson 13 measures it: the split into pieces
# is not the problem, the letters hidden inside the pieces are.

# %%
def pieces_of(tokenizer: bpe.Tokenizer, word: str) -> list[str]:
    return [tokenizer.token_str(i) for i in tokenizer.encode(word)]


for word in [" strawberry", "strawberry", " return", " self.assertEqual"]:
    print(f"{word!r:20} -> {pieces_of(tok, word)}")
straw_ids = tok.encode(" strawberry")
hidden = sum(len(tok.token_bytes(i)) > 1 for i in straw_ids)  # tokens of several letters
print(f"' strawberry' with this code tokenizer: {len(straw_ids)} tokens, {hidden} of them "
      "hold several letters")
gpt2_straw = None
if course.gpt2_dir() is None:
    print("GPT-2's vocab.json/merges.txt not found (lesson 1 says where to get them): "
          "skipping the GPT-2 line")
else:
    gpt2 = bpe.Tokenizer.from_gpt2(course.gpt2_dir())
    gpt2_straw = gpt2.encode(" strawberry")
    print(f"GPT-2: ' strawberry' -> {pieces_of(gpt2, ' strawberry')} ({len(gpt2_straw)} token)")

# %% [markdown]
# ## What you should see
#
# | quantity | value |
# |---|---|
# | first merges of `"aaabdaaabac"` (textbook, no pre-split) | `aa`, `aaa`, `aaab` |
# | `"aaabdaaabac"` encoded with them | 5 tokens, decoded back exactly |
# | textbook and fast trainer agree | `True` |
# | bytes per token on held-out code, 256 / 1024 vocab | 1.0 / about 2.5 (2.0-4.0) |
# | tokens for `" strawberry"`, this code tokenizer | at least 3, some of several letters |
# | tokens for `" strawberry"` with GPT-2 (if its files are there) | 1 |
#
# The cell below checks them (stdlib sources differ a little across Python versions,
# hence the ranges).

# %%
wiki = bpe.train_simple(WORD, 256 + 3, pattern=None)
assert [wiki.token_bytes(256 + i) for i in range(3)] == [b"aa", b"aaa", b"aaab"]
assert textbook.merges == fast.merges
assert abs(ratio[256] - 1.0) < 1e-9 and 2.0 < ratio[1024] < 4.0, ratio
assert len(word_ids) == 5 and decode(word_ids, word_merges) == WORD
assert word_ids == bpe.Tokenizer(word_merges, pattern=None).encode(WORD)
assert len(straw_ids) >= 3 and hidden >= 1
assert gpt2_straw is None or len(gpt2_straw) == 1
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/bpe.py`: `merge`, `train_simple` (the textbook loop), `Tokenizer.train`,
#   `encode`/`decode`, the split patterns (`PATTERNS`).
# - `minitf/bpe_train.py`: the fast trainer (incremental pair counts and a lazy heap).
