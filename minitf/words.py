"""A word-level tokenizer: one token per whitespace-separated word of a fixed vocabulary.

Toy languages (the seahorse experiment, the new-token experiment) are easier to read
with whole words as tokens: the logit lens then prints `horse`, not byte pieces. The
vocabulary is a plain list and a word's id is its index. Left out on purpose: unknown
words (encoding one is an error that names it), punctuation splitting, casing rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class WordTokenizer:
    """Maps each word of `words` to its index; `encode` splits on whitespace.

    Lesson 11 grows one by a word; lesson 12's toy language is written in one.
    """

    separator = " "  # between tokens when they are shown one after another

    def __init__(self, words: Iterable[str]) -> None:
        self.words: list[str] = list(words)
        self.ids: dict[str, int] = {}
        for i, word in enumerate(self.words):
            if not word or any(ch.isspace() for ch in word):
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

    def decode(self, ids: Sequence[int]) -> str:
        """[3, 10, 11] -> 'emoji-of sea horse' (words joined by single spaces)."""
        return self.separator.join(self.words[int(i)] for i in ids)

    def token_str(self, token_id: int) -> str:
        """The word for one id, as the logit lens prints it."""
        return self.words[int(token_id)]

    def with_words(self, new_words: Iterable[str]) -> WordTokenizer:
        """A new tokenizer whose vocabulary is this one's followed by `new_words`."""
        return WordTokenizer([*self.words, *new_words])

    def to_dict(self) -> dict:
        """A JSON-ready description, like `CharTokenizer.to_dict`."""
        return {"kind": "words", "words": list(self.words)}

    @classmethod
    def from_dict(cls, description: dict) -> WordTokenizer:
        if description.get("kind") != "words" or not isinstance(description.get("words"), list):
            raise ValueError(f"not a word tokenizer description: {description!r}")
        return cls(description["words"])

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"
