"""One interface for every tokenizer, and how a token is shown to a person.

minitf has three tokenizers: characters (`minitf.chars`, for the toy tasks), whole words
(`minitf.words`, for toy languages) and byte-level BPE (`minitf.bpe`, for real text).
Training, sampling, the lens, checkpoints and vocabulary surgery only ever use what they
share, written down here as `TokenizerLike`, so each tool works with all three and none
of them asks which kind it was given.

A token's *display form* is what tables and plots print: the text it stands for with a
space shown as '␣' (so "␣the" and "the" look different), a newline as '\\n', and bytes
that are only part of a character (byte-level BPE can split one) as `<0xF0>`.
Left out: normalisation (Unicode NFC, lowercasing) and unknown-token handling.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

SPACE = "␣"  # how a space inside a token is shown


class TokenizerLike(Protocol):
    """What minitf's tools need from a tokenizer (CharTokenizer, WordTokenizer, bpe.Tokenizer)."""

    kind: str  # the tokenizer's name in a checkpoint's config.json: "chars", "words", "bpe"
    separator: str  # printed between displayed tokens: "" (characters, pieces), " " (words)

    @property
    def vocab_size(self) -> int:
        """Number of token ids, 0..vocab_size-1."""
        ...

    def encode(self, text: str) -> list[int]:
        """Text -> ids; text the tokenizer can't represent is a ValueError saying why."""
        ...

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text."""
        ...

    def display(self, token_id: int) -> str:
        """The token's display form (see the module docstring)."""
        ...

    def token_id(self, token: str) -> int:
        """The id of one existing token given as its text; a ValueError if it isn't one."""
        ...

    def with_tokens(self, new_tokens: Sequence[str], *, special: bool = False) -> TokenizerLike:
        """A tokenizer with the same ids plus `new_tokens`, which get ids vocab_size, +1, ..."""
        ...

    def describe(self, folder: Path) -> dict:
        """A JSON-ready description for a checkpoint's config.json; may write files into
        `folder`, which the class's `from_description(description, folder)` reads back."""
        ...


def display_token(tokenizer: TokenizerLike | None, token_id: int) -> str:
    """One token as readable text for tables and plots; `[17]` when there is no tokenizer.

    >>> from minitf.chars import CharTokenizer
    >>> display_token(CharTokenizer("ab "), 2)
    '␣'
    >>> display_token(None, 17)
    '[17]'
    """
    return f"[{int(token_id)}]" if tokenizer is None else tokenizer.display(int(token_id))


def visible(text: str) -> str:
    """Make whitespace and control characters visible: ' ' -> '␣', '\\n' -> '\\n'."""
    out = []
    for ch in text:
        if ch == " ":
            out.append(SPACE)
        elif ch in "\n\t\r":
            out.append(repr(ch)[1:-1])  # the two characters backslash-n, backslash-t, ...
        elif unicodedata.category(ch).startswith(("C", "Z")):  # other control / odd spaces
            out.append(hex_bytes(ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def visible_bytes(raw: bytes) -> str:
    """Bytes as readable text: what is valid UTF-8 is decoded (and made `visible`), every
    other byte is shown as `<0xF0>`."""
    parts = []
    while raw:
        try:
            parts.append(visible(raw.decode("utf-8")))
            break
        except UnicodeDecodeError as err:
            parts.append(visible(raw[: err.start].decode("utf-8")))
            parts.append(hex_bytes(raw[err.start : err.end]))
            raw = raw[err.end :]
    return "".join(parts)


def hex_bytes(raw: bytes) -> str:
    """b'\\xf0\\x9f' -> '<0xF0><0x9F>'."""
    return "".join(f"<0x{b:02X}>" for b in raw)
