"""A character-level tokenizer: one token id per character of a fixed alphabet.

The toy tasks use it so that one digit is one token and the model never has to learn
what BPE would do to numbers. It offers the part of `minitf.bpe.Tokenizer`'s interface
that sampling and the logit lens need (`encode`, `decode`, `token_str`, `vocab_size`),
so either tokenizer can be handed to them. Left out: special tokens, unknown characters
(encoding one is an error) and any training.

>>> tok = CharTokenizer("0123456789+=")
>>> tok.encode("12+3=")
[1, 2, 10, 3, 11]
>>> tok.decode([1, 2, 10, 3, 11])
'12+3='
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
    """Token id i is the character `chars[i]`."""

    chars: str  # the alphabet, in id order; each character once

    def __post_init__(self) -> None:
        if not self.chars:
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

    def decode(self, ids) -> str:
        """Ids -> text. Accepts any iterable of ints (a list, a numpy or jax array)."""
        return "".join(self.chars[int(i)] for i in ids)

    def token_str(self, token_id: int) -> str:
        """The printable form of one token: the character itself."""
        return self.chars[int(token_id)]

    def to_dict(self) -> dict:
        """A JSON-ready description, stored in checkpoints."""
        return {"kind": "chars", "chars": self.chars}

    @classmethod
    def from_dict(cls, description: dict) -> CharTokenizer:
        if description.get("kind") != "chars" or not isinstance(description.get("chars"), str):
            raise ValueError(f"not a character tokenizer description: {description!r}")
        return cls(description["chars"])
