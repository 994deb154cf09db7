"""Checks for lesson 13's exercises: the letters each token hides, and the spell-first answer.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Random words come from a seeded numpy generator; the tokenizer is
trained here on a fixed text.
"""

from __future__ import annotations

import numpy as np

from minitf.bpe import Tokenizer
from minitf.course.hidden import graded

ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def _random_words(seed: int, n: int, max_len: int = 10) -> list[str]:
    rng = np.random.default_rng(seed)
    # few distinct letters, so letters repeat inside a word
    return ["".join(rng.choice(list("abcrst"), size=rng.integers(1, max_len + 1)))
            for _ in range(n)]


def _word_letter(rng: np.random.Generator) -> tuple:
    word = _random_words(int(rng.integers(1 << 30)), 1, max_len=12)[0]
    return (word, str(rng.choice(list("abcrstz"))))


def _letters_case(rng: np.random.Generator) -> tuple:
    """A text of random words (some letters with accents) and a vocabulary size for it."""
    words = _random_words(int(rng.integers(1 << 30)), int(rng.integers(5, 40)))
    words += [str(w) for w in rng.choice(["Éclair", "naïve", "ÀB", "x9", "café"], size=3)]
    return ("\n".join(words * 3), int(rng.integers(256, 300)))


def _letters_tokenizer(text: str, vocab_size: int) -> tuple:
    return (Tokenizer.train(text, vocab_size),)


@graded(points=1, cases=lambda rng: [_letters_case(rng) for _ in range(3)],
        prepare=_letters_tokenizer,
        hint="one row per token (vocab_size rows, 26 integer columns): count each byte from "
        "ord('a') to ord('z') in tokenizer.token_bytes(i); other bytes count for nothing")
def check_letter_counts(module) -> None:
    text = "\n".join(["strawberry", "straw", "berry", "raw", "error", "terror", "berries"] * 5)
    tokenizers = [Tokenizer([]), Tokenizer.train(text, 266), Tokenizer.train(text + " ÉÀ ", 270)]
    for tokenizer in tokenizers:
        got = np.asarray(module.letter_counts(tokenizer))
        V = tokenizer.vocab_size
        assert got.shape == (V, 26), (
            f"the table should have one row per token ({V}) and one column per letter (26)")
        assert np.issubdtype(got.dtype, np.integer), "the counts should be integers"
        for i in range(V):
            piece = tokenizer.token_bytes(i)
            want = [piece.count(ord(c)) for c in ALPHABET]
            if list(got[i]) != want:
                raise AssertionError(
                    f"row {i} (token {piece!r}) is wrong: count each letter a-z among the "
                    "token's bytes (a letter is its ASCII byte; other bytes count for nothing)")


@graded(points=1, cases=lambda rng: [(*_word_letter(rng), 12) for _ in range(6)],
        hint="the word, '.' up to `width` characters, ':', the letter, then its count")
def check_spell_first_answer(module) -> None:
    got = module.spell_first_answer("error", "r", 10)
    assert isinstance(got, str), "return a string"
    assert got == "error.....:r3", (
        "spell_first_answer('error', 'r', 10) should be the lesson's example: the letters, "
        "'.' up to 10 characters, ':', the letter, then the count")
    for width in (6, 10):
        for word in _random_words(1, 40, max_len=width):
            for letter in "arz":
                got = module.spell_first_answer(word, letter, width)
                assert len(got) == width + 3, (
                    f"spell_first_answer({word!r}, {letter!r}, {width}) should have width + 3 "
                    "characters: the padded spelling, ':', the letter and one digit")
                assert got[:len(word)] == word, "the answer should start with the word itself"
                assert set(got[len(word):width]) <= {"."}, (
                    "after the word come only '.' characters, up to `width` characters")
                assert got[width:width + 2] == ":" + letter, (
                    "after the padded spelling come ':' and the letter asked about")
                assert got[-1] == str(word.count(letter)), (
                    f"the last character of spell_first_answer({word!r}, {letter!r}, {width}) "
                    "should be the count of the letter")
