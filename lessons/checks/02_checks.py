"""Checks for lesson 2's exercises (pair counts, merging, the textbook BPE loop, encoding
and decoding with the merges).

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from minitf import bpe
from minitf.course.hidden import graded

TEXTS = ["aaabdaaabac", "the cat sat on the mat; the rat sat too.", "héllo wörld, héllo 🐠🐠",
         "abababab", "x"]


def _random_ids(seed: int, n: int, high: int) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).integers(0, high, size=n)]


def _words(rng: np.random.Generator, n: int) -> str:
    """A text of `n` random words over a few letters, so that pairs repeat."""
    letters = list("abcdeé ")
    return " ".join("".join(rng.choice(letters, size=rng.integers(1, 7))) for _ in range(n))


@graded(points=1, cases=lambda rng: [(_random_ids(int(rng.integers(1 << 30)),
                                                  int(rng.integers(0, 80)), int(h)),)
                                     for h in rng.integers(2, 7, size=6)],
        hint="count every adjacent pair (ids[i], ids[i + 1]), overlapping ones included")
def check_pair_counts(module) -> None:
    cases = [[], [7], [1, 2, 1, 2], [5, 5, 5, 5]] + [_random_ids(s, 60, 4) for s in range(5)]
    for ids in cases:
        got = module.pair_counts(list(ids))
        assert isinstance(got, dict), "pair_counts should return a dict {(a, b): count}"
        if dict(got) != dict(Counter(zip(ids, ids[1:], strict=False))):
            raise AssertionError(
                f"pair_counts({ids[:12]}{'...' if len(ids) > 12 else ''}) is wrong: count "
                "every adjacent pair (ids[i], ids[i + 1]), overlapping ones included")


def _merge_case(rng: np.random.Generator) -> tuple:
    ids = _random_ids(int(rng.integers(1 << 30)), int(rng.integers(2, 80)), int(rng.integers(2, 5)))
    a, b = (ids[0], ids[1]) if rng.random() < 0.8 else (int(rng.integers(4)), int(rng.integers(4)))
    return (ids, (a, b), int(rng.integers(256, 1000)))


@graded(points=1, cases=lambda rng: [_merge_case(rng) for _ in range(6)],
        hint="scan left to right; after replacing a pair, skip both of its ids; return a new "
        "list", borrowed=("minitf.bpe.merge",))
def check_merge_pair(module) -> None:
    cases = [([], (1, 2)), ([1, 1, 1], (1, 1)), ([1, 2, 3, 1, 2], (1, 2)), ([3, 1], (1, 2))]
    cases += [(_random_ids(s, 80, 3), (1, 2)) for s in range(5)]
    cases += [(_random_ids(9, 80, 2), (1, 1))]
    for ids, pair in cases:
        before = list(ids)
        got = module.merge_pair(ids, pair, 99)
        assert ids == before, "merge_pair should not change the list it is given"
        if list(got) != bpe.merge(list(ids), pair, 99):
            raise AssertionError(
                f"merge_pair({ids[:12]}{'...' if len(ids) > 12 else ''}, {pair}, 99) is wrong: "
                "scan left to right, and after replacing a pair skip both of its ids")


@graded(points=2, cases=lambda rng: [(_words(rng, int(rng.integers(3, 30))),
                                      int(rng.integers(3, 16))) for _ in range(5)],
        hint="recount after every merge, give merge k the id 256 + k, break ties by the "
        "largest (count, vocab[a], vocab[b]), and stop early only when no pair is left",
        borrowed=("minitf.bpe.train_simple", "minitf.bpe.Tokenizer.train",
                  "minitf.bpe_train.train_merges"))
def check_train_merges(module) -> None:
    for text in TEXTS:
        n = 12
        got = [tuple(p) for p in module.train_merges(text, n)]
        with warnings.catch_warnings():  # short texts allow fewer merges: expected here
            warnings.simplefilter("ignore")
            want = bpe.train_simple(text, 256 + n, pattern=None).merges
        if got == want:
            continue
        if len(got) != len(want):
            raise AssertionError(
                f"train_merges({text!r}, {n}) made {len(got)} merges: make n_merges merges, "
                "stopping early only when no pair is left")
        k = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        raise AssertionError(
            f"train_merges({text!r}, {n}): merge #{k} {got[k]} is not the right pair. Recount "
            "after every merge, give merge k the id 256 + k, and break ties by the largest "
            "(count, vocab[a], vocab[b])")


def _encode_decode_cases(rng: np.random.Generator) -> list[tuple]:
    """Three texts to encode and three id lists to decode, each with merges learned from
    another random text (so that encode meets text its merges never saw)."""
    cases = []
    for function in ("encode",) * 3 + ("decode",) * 3:
        with warnings.catch_warnings():  # short texts allow fewer merges: expected here
            warnings.simplefilter("ignore")
            merges = bpe.train_simple(_words(rng, int(rng.integers(5, 40))),
                                      256 + int(rng.integers(1, 25)), pattern=None).merges
        if function == "encode":
            text = _words(rng, int(rng.integers(0, 12))) + str(rng.choice(["", "🐠", "x🐠y"]))
            cases.append(("encode", text, merges))
        else:  # mostly letters and merged ids, sometimes any byte (a cut inside a character)
            common = list(b"abcde ") + list(range(256, 256 + len(merges)))
            ids = [int(rng.choice(common)) if rng.random() < 0.8 else int(rng.integers(256))
                   for _ in range(int(rng.integers(0, 25)))]
            cases.append(("decode", ids, merges))
    return cases


@graded(points=2, cases=_encode_decode_cases, functions=("encode", "decode"),
        hint="encode: start from the UTF-8 bytes and keep merging the adjacent pair whose "
        "merge came earliest (merge k makes id 256 + k); decode: join every id's bytes (a "
        "merged id's bytes are its two parts' bytes) and decode them with errors=\"replace\"",
        borrowed=("minitf.bpe.Tokenizer", "minitf.bpe.merge"))
def check_encode_decode(module) -> None:
    with warnings.catch_warnings():  # short texts allow fewer merges: expected here
        warnings.simplefilter("ignore")
        tokenizers = [bpe.train_simple(text * 3, 256 + 20, pattern=None) for text in TEXTS[:4]]
    samples = ["", "a", "aaab", "the cat sat on the mat", "héllo 🐠🐠 wörld", "abababababa",
               "rat tat mat", "🐠"[:1]]
    for tok in tokenizers:
        merges = [tuple(m) for m in tok.merges]
        for text in samples:
            got = module.encode(text, list(merges))
            assert isinstance(got, list), "encode should return a list of ids"
            want = tok.encode(text)
            if got != want:
                raise AssertionError(
                    f"encode({text!r}) is wrong with {len(merges)} merges: start from the UTF-8 "
                    "bytes and always merge the adjacent pair whose merge came earliest (lowest "
                    "rank); merge k makes id 256 + k")
            back = module.decode(list(want), list(merges))
            assert isinstance(back, str), "decode should return a str"
            assert back == text, (
                f"decode doesn't give back {text!r}: join the bytes of every id (a merged id's "
                "bytes are its two parts' bytes, joined) and decode them as UTF-8")
    half = list("🐠".encode())[:2]
    assert "\ufffd" in module.decode(half, []), (
        'half of a character should decode to U+FFFD: decode with errors="replace"')
