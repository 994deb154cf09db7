"""Byte-level BPE (byte-pair encoding), the tokenizer of GPT-2 and GPT-4.

Text becomes UTF-8 bytes; ids 0-255 are the bytes themselves. Training repeatedly
merges the most frequent adjacent pair of tokens into a new token: merge i creates id
256 + i, and special tokens (like "<|endoftext|>") come after the merges. A regex first
splits the text into chunks (words, numbers, punctuation, spaces) and no merge crosses a
chunk boundary, so " dog." can never become one token. Encoding replays the merges on
each chunk, lowest rank first.

Tie-breaking is part of the definition: the most frequent pair wins, and among equally
frequent pairs the lexicographically greatest (bytes_a, bytes_b). The merges are then a
pure function of (text, vocab_size, pattern, special_tokens).

`train_simple` is the textbook loop; `Tokenizer.train` (minitf/bpe_train.py) learns the
same merges fast. File formats live in minitf/bpe_files.py. Left out: normalization
(lowercasing, Unicode NFC), byte fallback and unknown tokens (bytes cover everything),
and dropout-style sampling of merges.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import pairwise, repeat
from pathlib import Path
from typing import Literal

import regex
from tqdm import tqdm

from minitf import long_text
from minitf.bpe_files import (
    BYTE_TO_CHAR,
    bytes_to_unicode,
    read_gpt2,
    read_minitf,
    unicode_to_bytes,
    write_gpt2,
    write_minitf,
)
from minitf.bpe_train import train_merges
from minitf.tokens import visible_bytes

__all__ = [
    "Tokenizer",
    "train_simple",
    "bytes_to_unicode",
    "unicode_to_bytes",
    "PATTERNS",
    "GPT2_PATTERN",
    "GPT4_PATTERN",
]

# GPT-2's split: contractions, letters, numbers, other symbols, each with an optional
# leading space; runs of spaces keep their last space for the next word.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# GPT-4's (tiktoken's cl100k_base): case-insensitive contractions, numbers of at most
# three digits, newlines kept apart from other spaces.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
    r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}

LONG_CHUNK = 24  # chunks with more bytes than this are merged with a heap (see _merge_long)
CACHED_CHUNK = 256  # chunks with at most this many characters are cached by encode
CACHE_SIZE = 200_000  # the cache is emptied when it holds this many chunks (bounds memory)
NO_MERGE = math.inf  # the rank of a pair that is not in the merge list: above every rank


def make_splitter(pattern: str | None) -> Callable[[str], list[str]]:
    """The pre-split function for a pattern name, a regex string, or None (no split)."""
    if pattern is None:
        return lambda text: [text] if text else []
    if not isinstance(pattern, str):
        raise ValueError(f"pattern must be 'gpt2', 'gpt4', a regex string or None; got {pattern!r}")
    try:
        return regex.compile(PATTERNS.get(pattern, pattern)).findall
    except regex.error as err:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {err}") from None


def split_checked(split: Callable[[str], list[str]], text: str) -> list[str]:
    """Pre-split `text`, refusing a pattern that skips characters (they would be lost)."""
    chunks = split(text)
    if sum(map(len, chunks)) != len(text):
        raise ValueError(
            "the split pattern does not match every character of the text, so some text "
            r"would be dropped; end the pattern with a catch-all such as |\s+|."
        )
    return chunks


def utf8(text: str) -> bytes:
    """`text` as UTF-8, with a clear error for lone surrogates (not valid Unicode)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        char = text[err.start]
        raise ValueError(
            f"the text contains a lone surrogate U+{ord(char):04X}, which is not valid Unicode "
            "and has no UTF-8 bytes; read the source with errors='replace' or remove it"
        ) from None


def special_splitter(specials: Iterable[str]) -> Callable[[str], list[str]]:
    """Split text around special tokens: even items are text, odd items are specials."""
    longest_first = sorted(specials, key=len, reverse=True)  # "<|a|>b" before "<|a|>"
    return regex.compile("(" + "|".join(map(regex.escape, longest_first)) + ")").split


def count_chunks(
    text: str | Iterable[str],
    pattern: str | None,
    special_tokens: Sequence[str],
    *,
    progress: bool = False,
) -> Counter[bytes]:
    """How often each pre-split chunk occurs, as UTF-8 bytes: the input of both trainers.

    `text` is a string, or the pieces of a long text cut at safe cuts (as
    `minitf.long_text.file_pieces` reads a file); a long string is split piece by piece
    too, which keeps memory bounded and gives the same chunks. Special tokens are cut out
    first, so nothing merges across them. `progress=True` shows a bar over the characters.
    """
    split = make_splitter(pattern)
    if any("\n" in s for s in special_tokens):  # a safe cut could fall inside one of them
        text = text if isinstance(text, str) else "".join(text)
        source: Iterable[str] = [text]
    else:
        source = long_text.pieces(text, pattern) if isinstance(text, str) else text
    cut_specials = special_splitter(special_tokens) if special_tokens else None
    counts: Counter[str] = Counter()
    total = len(text) if isinstance(text, str) else None
    # an iterable of pieces shows no bar of its own: its reader knows the size (in bytes)
    with tqdm(total=total, desc="bpe count chunks", unit="char", unit_scale=True,
              disable=not progress or total is None) as bar:  # fmt: skip
        for piece in source:
            for part in cut_specials(piece)[::2] if cut_specials else [piece]:
                counts.update(split_checked(split, part))
            bar.update(len(piece))
    return Counter({utf8(chunk): n for chunk, n in counts.items()})


def check_vocab_size(vocab_size: int, special_tokens: Sequence[str]) -> int:
    """Validate the training arguments; returns the number of merges to learn."""
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise ValueError(f"vocab_size must be an int; got {vocab_size!r}")
    if isinstance(special_tokens, str) or not all(isinstance(s, str) and s for s in special_tokens):
        raise ValueError(
            f"special_tokens must be a list of non-empty strings; got {special_tokens!r}"
        )
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens has duplicates: {special_tokens!r}")
    smallest = 256 + len(special_tokens)
    if vocab_size < smallest:
        raise ValueError(
            f"vocab_size must be at least {smallest} (256 bytes + {len(special_tokens)} "
            f"special tokens); got {vocab_size}"
        )
    return vocab_size - smallest


def warn_if_short(merges: list, n_merges: int, vocab_size: int) -> None:
    """Training stops early when no pair is left; say so rather than shrink silently."""
    if len(merges) < n_merges:
        warnings.warn(
            f"the text only allows {len(merges)} merges (every chunk became one token), so "
            f"the vocabulary has {vocab_size - n_merges + len(merges)} tokens instead of "
            f"{vocab_size}; train on more text or ask for a smaller vocab_size",
            stacklevel=3,
        )


def merge(ids: list[int], pair: tuple[int, int], new: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new`, scanning left to right."""
    out, i = [], 0
    while i < len(ids):
        if ids[i] == pair[0] and i + 1 < len(ids) and ids[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_simple(
    text: str, vocab_size: int, *, pattern: str | None = "gpt4", special_tokens: Sequence[str] = ()
) -> Tokenizer:
    """The textbook BPE loop: count all pairs, merge the most frequent, repeat.

    Same result as `Tokenizer.train`, but every merge recounts the whole text, so it
    takes minutes on a megabyte. Chunks are counted once so that a repeated word costs
    one pass. Ties go to the greatest (bytes_a, bytes_b).
    The lesson "BPE from scratch" explains it.
    """
    n_merges = check_vocab_size(vocab_size, special_tokens)
    chunks = count_chunks(text, pattern, special_tokens)
    words = [list(chunk) for chunk in chunks]  # each unique chunk as token ids
    freqs = list(chunks.values())
    vocab = [bytes([i]) for i in range(256)]  # id -> bytes, grows with each merge
    merges: list[tuple[int, int]] = []
    for new in range(256, 256 + n_merges):
        counts: Counter[tuple[int, int]] = Counter()
        for word, freq in zip(words, freqs, strict=True):
            for pair in pairwise(word):
                counts[pair] += freq
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))
        merges.append(best)
        vocab.append(vocab[best[0]] + vocab[best[1]])
        words = [merge(word, best, new) for word in words]
    warn_if_short(merges, n_merges, vocab_size)
    return Tokenizer(merges, pattern=pattern, special_tokens=special_tokens)


class Tokenizer:
    """A byte-level BPE tokenizer: merges in rank order, a split pattern, special tokens.

    Ids default to minitf's layout (bytes 0-255, merge i -> 256 + i, specials after);
    `byte_ids`, `merge_ids` and a {text: id} dict of `special_tokens` describe other
    layouts, such as GPT-2's files. Encoding caches the ids of each chunk it has seen.
    It implements `minitf.tokens.TokenizerLike`.

    >>> tok = Tokenizer.train("aaabdaaabac", 259, pattern=None)
    >>> [tok.token_bytes(i) for i in tok.merge_ids]
    [b'aa', b'aaa', b'aaab']
    >>> tok.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> tok.decode([258, 100])
    'aaabd'
    """

    kind = "bpe"  # see minitf.tokens.TokenizerLike
    separator = ""  # pieces are shown side by side; a space is part of its piece

    def __init__(
        self,
        merges: Sequence[tuple[int, int]],
        *,
        pattern: str | None = "gpt4",
        special_tokens: Sequence[str] | Mapping[str, int] = (),
        byte_ids: Sequence[int] | None = None,
        merge_ids: Sequence[int] | None = None,
    ):
        self.pattern = pattern
        self._split = make_splitter(pattern)
        self._merges = [(int(a), int(b)) for a, b in merges]
        self._byte_ids = list(range(256)) if byte_ids is None else [int(i) for i in byte_ids]
        n = 256 + len(self._merges)
        self._merge_ids = list(range(256, n)) if merge_ids is None else [int(i) for i in merge_ids]
        if not isinstance(special_tokens, Mapping):
            special_tokens = {s: n + k for k, s in enumerate(special_tokens)}
        self.special_tokens: dict[str, int] = dict(special_tokens)
        self._vocab = self._build_vocab()
        self._special_ids = set(self.special_tokens.values())
        # pair of ids -> rank; encode merges the lowest-ranked pair first
        self._ranks = {pair: rank for rank, pair in enumerate(self._merges)}
        self._cache: dict[str, list[int]] = {}  # chunk -> ids, filled by encode
        self._cuttable = long_text.can_cut(pattern)  # long texts may be encoded in pieces

    def _build_vocab(self) -> list[bytes]:
        """Id -> bytes, checking that bytes, merges and specials fill ids 0..N-1 exactly."""
        if len(self._byte_ids) != 256 or len(self._merge_ids) != len(self._merges):
            raise ValueError("byte_ids needs 256 ids and merge_ids one id per merge")
        ids = set(self._byte_ids) | set(self._merge_ids) | set(self.special_tokens.values())
        if ids != set(range(len(ids))):
            raise ValueError("token ids must be exactly 0..vocab_size-1, with no gaps or negatives")
        vocab: list[bytes | None] = [None] * len(ids)
        for b, i in enumerate(self._byte_ids):
            if vocab[i] is not None:
                raise ValueError(f"bytes {vocab[i]!r} and {bytes([b])!r} both have id {i}")
            vocab[i] = bytes([b])
        for rank, ((a, b), i) in enumerate(zip(self._merges, self._merge_ids, strict=True)):
            if not (0 <= a < len(vocab) and 0 <= b < len(vocab)) or None in (vocab[a], vocab[b]):
                raise ValueError(f"merge {rank} ({a}, {b}) uses a token no earlier merge made")
            token = vocab[a] + vocab[b]
            if vocab[i] not in (None, token):  # two merges may make the same string (HF)
                raise ValueError(f"merge {rank} makes id {i}, which is already {vocab[i]!r}")
            vocab[i] = token
        for text, i in self.special_tokens.items():
            if vocab[i] is not None:
                raise ValueError(f"special token {text!r} has id {i}, already {vocab[i]!r}")
            vocab[i] = utf8(text)
        return vocab

    # --- training -----------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        vocab_size: int,
        *,
        pattern: str | None = "gpt4",
        special_tokens: Sequence[str] = (),
        progress: bool = False,
    ) -> Tokenizer:
        """Learn `vocab_size - 256 - len(special_tokens)` merges from `text` (fast).

        Ties go to the greatest (bytes_a, bytes_b), exactly as in `train_simple`. If the
        text runs out of pairs first, it warns and returns the smaller vocabulary.
        `text` may be the pieces of a long text (`minitf.long_text.file_pieces`), so a
        file far bigger than memory trains too. `progress=True` shows tqdm bars over the
        chunk counting and the merges.
        """
        n_merges = check_vocab_size(vocab_size, special_tokens)
        chunks = count_chunks(text, pattern, special_tokens, progress=progress)
        merges = train_merges(chunks, n_merges, progress=progress)
        warn_if_short(merges, n_merges, vocab_size)
        return cls(merges, pattern=pattern, special_tokens=special_tokens)

    # --- the vocabulary -----------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids: bytes + merges + special tokens."""
        return len(self._vocab)

    @property
    def merges(self) -> list[tuple[int, int]]:
        """The merged pairs of ids, in rank order (the order training learned them)."""
        return list(self._merges)

    @property
    def merge_ids(self) -> list[int]:
        """The id each merge creates (256 + rank unless loaded from foreign files)."""
        return list(self._merge_ids)

    def byte_id(self, byte: int) -> int:
        """The id of the single-byte token `byte` (equal to `byte` unless loaded from files)."""
        return self._byte_ids[byte]

    def _check_id(self, i: int) -> None:
        if not 0 <= i < len(self._vocab):
            last = len(self._vocab) - 1
            raise ValueError(f"token id {i} is out of range; ids go from 0 to {last}")

    def token_bytes(self, i: int) -> bytes:
        """The bytes token `i` stands for."""
        self._check_id(i)
        return self._vocab[i]

    def token_str(self, i: int) -> str:
        """GPT-2's printable form of token `i` ("Ġthe" for b" the"); specials as written."""
        self._check_id(i)
        if i in self._special_ids:
            return self._vocab[i].decode("utf-8")
        return "".join(BYTE_TO_CHAR[b] for b in self._vocab[i])

    def display(self, i: int) -> str:
        """Token `i` as readable text: its bytes decoded as UTF-8, a space shown as '␣'
        (where `token_str` would show 'Ġ', and 'Ã©' for 'é'), and bytes that are only part
        of a character as `<0xF0>`."""
        return visible_bytes(self.token_bytes(i))

    def token_id(self, token: str) -> int:
        """The id of one existing token given as its text (" hat"), its printable form
        ("Ġhat") or a special token's text."""
        if token in self.special_tokens:
            return self.special_tokens[token]
        ids = self.encode(token)
        if len(ids) == 1:
            return ids[0]
        for i in range(self.vocab_size):  # GPT-2's printable form, as token_str shows it
            if self.token_str(i) == token:
                return i
        raise ValueError(
            f"{token!r} is not a single token of this tokenizer (it encodes as {ids}); "
            "give an existing token's text"
        )

    def with_tokens(self, new_tokens: Sequence[str], *, special: bool = False) -> Tokenizer:
        """Every old id kept, plus `new_tokens` at ids vocab_size, vocab_size + 1, ...

        special=True: new special tokens (matched whole, never merged). Otherwise each
        new token must be exactly two existing tokens glued together; it becomes one new
        merge, ranked after all the old ones, so encoding produces it wherever BPE used to
        leave that pair. The lesson "New tokens" uses it.
        """
        merges, merge_ids = self.merges, self.merge_ids
        specials = dict(self.special_tokens)
        next_id = self.vocab_size
        for text in new_tokens:
            if special:
                if text in specials:
                    raise ValueError(f"{text!r} is already a special token (id {specials[text]})")
                specials[text] = next_id
            else:
                pair = self.encode(text)
                if len(pair) != 2:
                    raise ValueError(
                        f"an ordinary BPE token is one new merge of two existing tokens, but "
                        f"{text!r} encodes as {len(pair)} tokens {pair}; add it as special=True, "
                        "or add its pieces first, one merge at a time"
                    )
                merges, merge_ids = [*merges, tuple(pair)], [*merge_ids, next_id]
            next_id += 1
        return Tokenizer(merges, pattern=self.pattern, special_tokens=specials,
                         byte_ids=self._byte_ids, merge_ids=merge_ids)  # fmt: skip

    # --- encoding -----------------------------------------------------------------------

    def encode(
        self, text: str, *, allowed_special: Literal["none", "all"] | Collection[str] = "none"
    ) -> list[int]:
        """Text -> ids. Special tokens are recognised only if `allowed_special` allows them
        ("all", or a set of them); otherwise their text is encoded like any other text."""
        if allowed_special == "none":
            return self._encode_ordinary(text)
        if allowed_special == "all":
            allowed = self.special_tokens
        elif isinstance(allowed_special, str):
            raise ValueError(
                f"allowed_special must be 'none', 'all' or a set; got {allowed_special!r}"
            )
        else:
            unknown = set(allowed_special) - set(self.special_tokens)
            if unknown:
                raise ValueError(f"allowed_special names unknown special tokens {sorted(unknown)}")
            allowed = {s: self.special_tokens[s] for s in allowed_special}
        if not allowed:
            return self._encode_ordinary(text)
        ids: list[int] = []
        for k, piece in enumerate(special_splitter(allowed)(text)):
            if k % 2:  # odd pieces are the special tokens themselves
                ids.append(allowed[piece])
            else:
                ids += self._encode_ordinary(piece)
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        """Encode text with no special tokens: pre-split, then BPE each chunk (cached).

        A long text is pre-split a piece at a time (`minitf.long_text.pieces`), so the
        list of chunks never holds more than a piece's worth."""
        cache = self._cache
        ids: list[int] = []
        long = self._cuttable and len(text) > long_text.PIECE_CHARS
        for piece in long_text.pieces(text, self.pattern) if long else [text]:
            for chunk in split_checked(self._split, piece):
                chunk_ids = cache.get(chunk)
                if chunk_ids is None:
                    chunk_ids = self._encode_chunk(chunk)
                    if len(cache) >= CACHE_SIZE:
                        cache.clear()
                    if len(chunk) <= CACHED_CHUNK:
                        cache[chunk] = chunk_ids
                ids += chunk_ids
        return ids

    def _encode_chunk(self, chunk: str) -> list[int]:
        """BPE one chunk: start from its bytes, merge the lowest-ranked pair until none is left."""
        byte_ids = self._byte_ids
        ids = [byte_ids[b] for b in utf8(chunk)]
        if len(ids) > LONG_CHUNK:
            return self._merge_long(ids)
        rank_of, merge_ids = self._ranks.get, self._merge_ids
        # ranks[i] is the rank of the pair (ids[i], ids[i + 1])
        ranks = list(map(rank_of, pairwise(ids), repeat(NO_MERGE)))
        while ranks:
            rank = min(ranks)
            if rank == NO_MERGE:
                break
            i = ranks.index(rank)  # leftmost pair with the lowest rank
            ids[i : i + 2] = [merge_ids[rank]]
            del ranks[i]
            # only the pairs on either side of the new token have changed
            if i > 0:
                ranks[i - 1] = rank_of((ids[i - 1], ids[i]), NO_MERGE)
            if i < len(ranks):
                ranks[i] = rank_of((ids[i], ids[i + 1]), NO_MERGE)
        return ids

    def _merge_long(self, ids: list[int]) -> list[int]:
        """Same result as the loop in `_encode_chunk`, in O(n log n) for long chunks.

        Tokens sit in a linked list (`nxt`, `prv`); a heap holds (rank, position) of
        candidate pairs. A popped entry is skipped if its pair has changed since.
        """
        ranks, merge_ids = self._ranks, self._merge_ids
        ids: list[int | None] = list(ids)  # None marks a token merged into its left neighbour
        n = len(ids)
        nxt = [*range(1, n), -1]
        prv = [-1, *range(n - 1)]
        heap = [(ranks[p], i) for i, p in enumerate(pairwise(ids)) if p in ranks]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = nxt[i]
            if ids[i] is None or j < 0 or ranks.get((ids[i], ids[j])) != rank:
                continue  # stale: position i was merged away, or its pair changed
            ids[i], ids[j] = merge_ids[rank], None
            nxt[i] = nxt[j]
            if nxt[j] >= 0:
                prv[nxt[j]] = i
            for left in (prv[i], i):  # the two new pairs around the merged token
                right = nxt[left] if left >= 0 else -1
                if right >= 0 and (ids[left], ids[right]) in ranks:
                    heapq.heappush(heap, (ranks[ids[left], ids[right]], left))
        return [t for t in ids if t is not None]

    # --- decoding -----------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> the raw bytes they stand for (may be cut in the middle of a character)."""
        ids = list(ids)
        if ids and (min(ids) < 0 or max(ids) >= len(self._vocab)):
            bad = next(i for i in ids if not 0 <= i < len(self._vocab))
            self._check_id(bad)
        vocab = self._vocab
        return b"".join([vocab[i] for i in ids])

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text. Bytes that are not valid UTF-8 become U+FFFD, as in GPT-2."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # --- files --------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the tokenizer to one human-readable text file (see minitf/bpe_files.py)."""
        write_minitf(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a file written by `save`; a foreign or damaged file is a ValueError."""
        return cls(**read_minitf(path))

    def save_gpt2(self, folder: str | Path) -> None:
        """Write `vocab.json` and `merges.txt` as GPT-2 and Hugging Face `tokenizers` do."""
        write_gpt2(self, folder)

    @classmethod
    def from_gpt2(cls, folder: str | Path, *, pattern: str | None = "gpt2") -> Tokenizer:
        """Read `vocab.json` + `merges.txt` (e.g. GPT-2's own); ids are the file's ids."""
        return cls(**read_gpt2(folder), pattern=pattern)

    FILE = "tokenizer.bpe"  # the file `describe` writes into a checkpoint folder

    def describe(self, folder: Path) -> dict:
        """For a checkpoint: write `folder/tokenizer.bpe` and return where it is."""
        self.save(Path(folder) / self.FILE)
        return {"kind": self.kind, "file": self.FILE}

    @classmethod
    def from_description(cls, description: dict, folder: Path) -> Tokenizer:
        """Read back what `describe` wrote."""
        if description.get("kind") != cls.kind or not isinstance(description.get("file"), str):
            raise ValueError(f"not a BPE tokenizer description: {description!r}")
        return cls.load(Path(folder) / description["file"])

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, pattern={self.pattern!r}, "
            f"special_tokens={list(self.special_tokens)})"
        )
