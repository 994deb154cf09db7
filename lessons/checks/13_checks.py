"""Checks for lesson 13's exercises: counting a letter, a word's BPE pieces, the spell-first
answer.

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


def _pieces_case(rng: np.random.Generator) -> tuple:
    """A short corpus to train a tokenizer on, its vocabulary size, and a word to split."""
    words = _random_words(int(rng.integers(1 << 30)), 12, max_len=8)
    return ("\n".join(words * 4), 256 + int(rng.integers(3, 20)), str(rng.choice(words)) +
            str(rng.choice(list("abcrst"))))


def _trained(text: str, vocab_size: int, word: str) -> tuple:
    import warnings

    with warnings.catch_warnings():  # a short text may allow fewer merges: that's fine here
        warnings.simplefilter("ignore")
        return (Tokenizer.train(text, vocab_size), word)


@graded(points=1, cases=lambda rng: [_word_letter(rng) for _ in range(8)],
        hint="count every position of the word whose character equals the letter (first and "
        "last positions included)")
def check_count_letter(module) -> None:
    for word, letter in [("strawberry", "r"), ("banana", "a"), ("banana", "z"), ("aaaa", "a"),
                         ("", "a"), ("level", "l"), ("level", "v")]:
        got = module.count_letter(word, letter)
        assert isinstance(got, int | np.integer), "return an int"
        assert got == word.count(letter), (
            f"count_letter({word!r}, {letter!r}) is wrong: count every position of the word "
            "whose character equals the letter (first and last positions included)")
    for word in _random_words(0, 50):
        for letter in "abz":
            assert module.count_letter(word, letter) == word.count(letter), (
                f"count_letter({word!r}, {letter!r}) is wrong")


@graded(points=1, cases=lambda rng: [_pieces_case(rng) for _ in range(4)], prepare=_trained,
        hint="encode the word, then decode each token id on its own, in order")
def check_token_pieces(module) -> None:
    text = "\n".join(["strawberry", "straw", "berry", "raw", "error", "terror", "berries"] * 5)
    tokenizer = Tokenizer.train(text, 266)  # 10 merges: pieces of several letters
    for word in ["strawberry", "straw", "errors", "rabbit", "s", "yrrebwarts"]:
        got = module.token_pieces(tokenizer, word)
        assert isinstance(got, list) and all(isinstance(p, str) for p in got), (
            "return a list of strings, one per token")
        ids = tokenizer.encode(word)
        assert "".join(got) == word, (
            f"token_pieces(tokenizer, {word!r}) does not join back into the word")
        assert len(got) == len(ids), (
            f"token_pieces(tokenizer, {word!r}) should have one piece per token id that "
            "tokenizer.encode gives")
        assert got == [tokenizer.decode([i]) for i in ids], (
            f"the pieces of {word!r} don't match the tokens: decode each id on its own")
    no_merges = Tokenizer([])
    assert module.token_pieces(no_merges, "berry") == list("berry"), (
        "with a tokenizer that has no merges, every piece should be one letter")


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
