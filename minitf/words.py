"""A word-level tokenizer: one token per whitespace-separated word of a fixed vocabulary.

Toy languages (the lessons "New tokens" and "When the token doesn't exist") are easier
to read with whole words as tokens: the logit lens then prints `horse`, not byte pieces.
The vocabulary is a plain list and a word's id is its index. It implements
`minitf.tokens.TokenizerLike`. Left out on purpose: unknown words (encoding one is an
error that names it), punctuation splitting, casing rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from minitf.tokens import visible


class WordTokenizer:
    """Maps each word of `words` to its index; `encode` splits on whitespace."""

    kind = "words"  # see minitf.tokens.TokenizerLike
    separator = " "  # between tokens when they are shown one after another

    def __init__(self, words: Iterable[str]) -> None:
        self.words: list[str] = list(words)
        self.ids: dict[str, int] = {}
        for i, word in enumerate(self.words):
            if not isinstance(word, str) or not word or any(ch.isspace() for ch in word):
                raise ValueError(f"word {i} ({word!r}) must be non-empty and contain no space")
            if word in self.ids:
                raise ValueError(f"word {word!r} appears twice in the vocabulary; list it once")
            self.ids[word] = i

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """'emoji-of sea horse' -> [3, 10, 11]; an unknown word is a ValueError."""
        unknown = [w for w in text.split() if w not in self.ids]
        if unknown:
            raise ValueError(
                f"words not in the vocabulary: {unknown}; add them with "
                "minitf.surgery.add_tokens or build the tokenizer with them"
            )
        return [self.ids[w] for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        """[3, 10, 11] -> 'emoji-of sea horse' (words joined by single spaces)."""
        return self.separator.join(self.words[int(i)] for i in ids)

    def display(self, token_id: int) -> str:
        """The word for one id, as the logit lens prints it."""
        return visible(self.words[int(token_id)])

    def token_id(self, token: str) -> int:
        """The id of one word."""
        if token not in self.ids:
            raise ValueError(f"{token!r} is not a single token of this tokenizer (not one of "
                             "its words)")
        return self.ids[token]

    def with_tokens(self, new_tokens: Sequence[str], *, special: bool = False) -> WordTokenizer:
        """A new tokenizer whose vocabulary is this one's followed by `new_tokens` (every
        word is whole already, so `special` changes nothing)."""
        return WordTokenizer([*self.words, *new_tokens])

    def describe(self, folder: Path | None = None) -> dict:
        """A JSON-ready description, stored in checkpoints (the word list fits in it)."""
        return {"kind": self.kind, "words": list(self.words)}

    @classmethod
    def from_description(cls, description: dict, folder: Path | None = None) -> WordTokenizer:
        if description.get("kind") != cls.kind or not isinstance(description.get("words"), list):
            raise ValueError(f"not a word tokenizer description: {description!r}")
        return cls(description["words"])

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"
