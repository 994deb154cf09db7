"""Checks for lesson 1's exercises. Each takes the learner's definitions as `module`.

A check returns when the exercise is right and raises AssertionError with a hint (never
the expected answer) when it isn't; NotImplementedError from a TODO stub propagates.
`@graded` above each check declares the exercise's hidden cases for a class's grade
(see `minitf.course.hidden`).
"""

from __future__ import annotations

import numpy as np

from minitf import bpe
from minitf.course.hidden import graded

# the edges of UTF-8's 1/2/3/4-byte ranges, and a few well-known characters
BOUNDARIES = [0, 0x41, 0x7F, 0x80, 0xE9, 0x7FF, 0x800, 0x4E2D, 0xFFFD, 0xFFFF,
              0x10000, 0x1F420, 0x10FFFF]
RANGES = [(0, 0x7F, "1-byte (ASCII)"), (0x80, 0x7FF, "2-byte"), (0x800, 0xFFFF, "3-byte"),
          (0x10000, 0x10FFFF, "4-byte")]


def _code_points() -> list[int]:
    rng = np.random.default_rng(0)
    randoms = [int(c) for c in rng.integers(0, 0x110000, size=300)]
    # surrogates (U+D800..U+DFFF) are not characters: str.encode refuses them
    return [c for c in BOUNDARIES + randoms if not 0xD800 <= c <= 0xDFFF]


def _random_code_point(rng: np.random.Generator) -> int:
    """A code point from a random one of UTF-8's four ranges (never a surrogate)."""
    lo, hi, _ = RANGES[int(rng.integers(len(RANGES)))]
    cp = int(rng.integers(lo, hi + 1))
    return cp - 0x800 if 0xD800 <= cp <= 0xDFFF else cp


def _random_text(rng: np.random.Generator, n: int) -> str:
    return "".join(chr(_random_code_point(rng)) for _ in range(n))


def _printable(text: str, cut: int = 0) -> str:
    """GPT-2's printable form of the UTF-8 bytes of `text`, less `cut` bytes at the end."""
    table = bpe.bytes_to_unicode()
    raw = text.encode("utf-8")
    return "".join(table[b] for b in raw[: len(raw) - cut])


@graded(points=2, cases=lambda rng: [(_random_code_point(rng),) for _ in range(8)],
        hint="check the number of bytes for the code point's range, the prefix bits of the "
        "first byte, and that each continuation byte is 10 followed by 6 bits",
        borrowed=("minitf.bpe.utf8",), forbidden=("encode", "codecs"))
def check_utf8_encode(module) -> None:
    for cp in _code_points():
        got = module.utf8_encode(cp)
        assert isinstance(got, bytes), (
            f"utf8_encode should return bytes; got {type(got).__name__}")
        if got != chr(cp).encode("utf-8"):
            lo, hi, kind = next(r for r in RANGES if r[0] <= cp <= r[1])
            raise AssertionError(
                f"utf8_encode(0x{cp:X}) is wrong. It is in the {kind} range "
                f"U+{lo:04X}..U+{hi:04X}: check the number of bytes, the prefix bits of the "
                "first byte, and that each continuation byte is 10 followed by 6 bits.")


@graded(points=1, cases=lambda rng: [()],
        hint="bytes !..~, ¡..¬ and ®..ÿ keep their own character; the others, in increasing "
        "order, get chr(256), chr(257), ...",
        borrowed=("minitf.bpe.bytes_to_unicode", "minitf.bpe.unicode_to_bytes",
                  "minitf.bpe_files.BYTE_TO_CHAR"))
def check_printable_bytes(module) -> None:
    table = module.printable_bytes()
    assert isinstance(table, dict), "printable_bytes should return a dict {byte: character}"
    assert sorted(table) == list(range(256)), "the table needs exactly the keys 0..255"
    values = list(table.values())
    assert all(isinstance(v, str) and len(v) == 1 for v in values), (
        "every value should be a single character")
    assert len(set(values)) == 256, "two bytes map to the same character: it can't be inverted"
    reference = bpe.bytes_to_unicode()
    for b in range(256):
        if table[b] != reference[b]:
            kept = chr(b) == reference[b]
            hint = ("this byte prints as itself in Latin-1 and should keep its character"
                    if kept else "this byte is not printable: it should get the next "
                    "character from chr(256) on, counting such bytes in increasing order")
            raise AssertionError(f"byte {b} maps to the wrong character; {hint}")


@graded(points=2, cases=lambda rng: [
            (_printable(_random_text(rng, int(rng.integers(1, 6))) + " x"),) for _ in range(5)]
        + [(_printable(_random_text(rng, 3), cut=int(rng.integers(1, 3))),) for _ in range(2)],
        hint="map each character back to its byte, then decode the bytes as UTF-8 with "
        'errors="replace" (a token can end inside a character)',
        borrowed=("minitf.bpe_files.from_printable",))
def check_token_to_text(module) -> None:
    table = bpe.bytes_to_unicode()
    for text in ["hello", " world", "\n\t", "héllo 🐠", "中文", "", "a b  c"]:
        printable = "".join(table[b] for b in text.encode("utf-8"))
        got = module.token_to_text(printable)
        assert isinstance(got, str), f"token_to_text should return a str; got {type(got)}"
        assert got == text, (
            f"token_to_text({printable!r}) doesn't give back the original text: map each "
            "character to its byte, then decode the bytes as UTF-8")
    half = "".join(table[b] for b in "🐠".encode()[:2])
    got = module.token_to_text(half)
    assert "\ufffd" in got, (
        "half of an emoji's bytes should decode to the replacement character U+FFFD: "
        'use .decode("utf-8", errors="replace")')
