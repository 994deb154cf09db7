"""Long texts in bounded memory: cut them where BPE's pre-split would cut anyway.

A 50 MB text is 12 million pre-split chunks; holding them all in one Python list takes
gigabytes. So long texts are handled in pieces of about a megabyte. A piece may end only
at a *safe cut*: a position right after a newline that sits between two characters that
are not whitespace (`word\\nword`). Both of minitf's split patterns (GPT-2's and
GPT-4's) always end a chunk there and start the next one afresh, so splitting the
pieces one by one gives exactly the chunks of the whole text, and so the same merges and
the same token ids (tests/test_text.py checks this against the whole-text split on
fuzzed text). For any other pattern a text is one piece.

`file_pieces` reads a UTF-8 file as such pieces, decoding as it goes, so a file is never
in memory twice; a byte that is not UTF-8 is a ValueError that names its offset.
Left out: reading from pipes (a corpus is a file with a size).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterator
from pathlib import Path

PIECE_CHARS = 1 << 20  # a piece is at least this long (unless the text ends first)
READ_BYTES = 1 << 22  # file_pieces reads this many bytes at a time
SAFE_PATTERNS = ("gpt2", "gpt4")  # pattern names whose chunks never cross a safe cut


def can_cut(pattern: str | None) -> bool:
    """True when texts split by `pattern` may be cut at safe cuts (see the module docstring)."""
    from minitf.bpe import PATTERNS  # bpe imports this module; the table lives there

    return pattern in SAFE_PATTERNS or pattern in {PATTERNS[name] for name in SAFE_PATTERNS}


def safe_cut(text: str, start: int) -> int:
    """The first safe cut at or after `start`, or len(text) when there is none."""
    i = start - 1
    while True:
        i = text.find("\n", max(i, 1))
        if i < 0 or i + 1 >= len(text):
            return len(text)
        if not text[i - 1].isspace() and not text[i + 1].isspace():
            return i + 1
        i += 1


def pieces(text: str, pattern: str | None, size: int = PIECE_CHARS) -> Iterator[str]:
    """`text` as consecutive pieces of at least `size` characters, cut at safe cuts only.

    Joined, the pieces are `text`; a text that `pattern` doesn't allow to cut is one piece.
    """
    if not can_cut(pattern) or len(text) <= size:
        if text:
            yield text
        return
    start = 0
    while start < len(text):
        end = safe_cut(text, start + size)
        yield text[start:end]
        start = end


def file_pieces(
    path: str | os.PathLike,
    pattern: str | None,
    *,
    start: int = 0,
    stop: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """Bytes `start:stop` of a UTF-8 file, decoded, as `pieces` would cut the whole text.

    `start` and `stop` must fall on character boundaries (see `char_boundary`).
    `on_bytes(n)` is called as each block of n bytes is read (for a progress bar).
    A byte sequence that is not UTF-8 is a ValueError naming the file and the offset.
    """
    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    stop = os.path.getsize(path) if stop is None else stop
    text, offset = "", start
    with open(path, "rb") as f:
        f.seek(start)
        while offset < stop:
            block = f.read(min(READ_BYTES, stop - offset))
            if not block:
                break
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the last block
            try:
                text += decoder.decode(block, final=offset + len(block) >= stop)
            except UnicodeDecodeError as err:  # err.start counts from the pending bytes
                raise not_utf8(path, offset - pending + err.start) from None
            offset += len(block)
            if on_bytes is not None:
                on_bytes(len(block))
            if not can_cut(pattern):
                continue
            # hand out everything up to the last safe cut; keep the rest for the next block
            while len(text) > 2 * PIECE_CHARS:
                end = safe_cut(text, PIECE_CHARS)
                if end >= len(text):
                    break
                yield text[:end]
                text = text[end:]
    if text:
        yield from pieces(text, pattern)


def not_utf8(path: Path, offset: int) -> ValueError:
    """The error for a file that is not UTF-8 text, naming the first bad byte's offset."""
    return ValueError(
        f"{path} is not UTF-8 text: the byte at offset {offset} does not decode; "
        "convert the file to UTF-8 first (e.g. `iconv -t utf-8`)"
    )


def char_boundary(path: str | os.PathLike, offset: int) -> int:
    """The first offset at or after `offset` where a UTF-8 character starts in the file."""
    with open(path, "rb") as f:
        f.seek(offset)
        ahead = f.read(4)  # a UTF-8 character has at most 3 continuation bytes
    for i, byte in enumerate(ahead):
        if byte & 0b1100_0000 != 0b1000_0000:  # not a continuation byte (10xxxxxx)
            return offset + i
    return offset + len(ahead)
