"""A character-level tokenizer: one token id per character of a fixed alphabet.

The toy tasks use it so that one digit is one token and the model never has to learn
what BPE would do to numbers. It implements `minitf.tokens.TokenizerLike`, so sampling,
the lens and checkpoints take it like any other tokenizer. Left out: special tokens,
unknown characters (encoding one is an error that names it) and any training.

>>> tok = CharTokenizer("0123456789+=")
>>> tok.encode("12+3=")
[1, 2, 10, 3, 11]
>>> tok.decode([1, 2, 10, 3, 11])
'12+3='
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from minitf.tokens import visible


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
    """Token id i is the character `chars[i]`."""

    chars: str  # the alphabet, in id order; each character once
    kind = "chars"  # (class attributes, not fields) see minitf.tokens.TokenizerLike
    separator = ""

    def __post_init__(self) -> None:
        if not isinstance(self.chars, str) or not self.chars:
            raise ValueError("CharTokenizer needs at least one character in its alphabet")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError(f"CharTokenizer alphabet repeats a character: {self.chars!r}")

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Characters -> ids; a character outside the alphabet is an error."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(
                f"characters {unknown} are not in this tokenizer's alphabet {self.chars!r}; "
                "write the text with those characters only"
            )
        return [index[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text. Accepts any iterable of ints (a list, a numpy or jax array)."""
        return "".join(self.chars[int(i)] for i in ids)

    def display(self, token_id: int) -> str:
        """The character itself, with whitespace made visible ('␣' for a space)."""
        return visible(self.chars[int(token_id)])

    def token_id(self, token: str) -> int:
        """The id of one character."""
        if len(token) != 1 or token not in self.chars:
            raise ValueError(f"{token!r} is not a single token of this tokenizer (one "
                             f"character of {self.chars!r})")
        return self.chars.index(token)

    def with_tokens(self, new_tokens: Sequence[str], *, special: bool = False) -> CharTokenizer:
        """The alphabet followed by new characters (one character per token, no specials)."""
        if special or any(len(t) != 1 for t in new_tokens):
            raise ValueError(
                f"a CharTokenizer has one character per token and no special tokens; got "
                f"{list(new_tokens)} (special={special}). Add single characters."
            )
        return CharTokenizer(self.chars + "".join(new_tokens))

    def describe(self, folder: Path | None = None) -> dict:
        """A JSON-ready description, stored in checkpoints (the alphabet fits in it)."""
        return {"kind": self.kind, "chars": self.chars}

    @classmethod
    def from_description(cls, description: dict, folder: Path | None = None) -> CharTokenizer:
        if description.get("kind") != cls.kind or not isinstance(description.get("chars"), str):
            raise ValueError(f"not a character tokenizer description: {description!r}")
        return cls(description["chars"])
