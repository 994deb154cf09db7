"""Checks for lesson 8's exercises: the split by position, random windows, bits per byte.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Inputs are small numpy arrays (nothing to compile); the split is
compared with the rule the lesson states, the windows with what any window must be
(contiguous, inside the ids, every start possible), bits per byte with hand-worked cases
and `minitf.text.bits_per_byte`. The hidden cases (`@graded`) draw fresh ids, fractions
and sizes; a window is graded as any valid draw, not the reference's own.
"""

from __future__ import annotations

import math

import numpy as np

from minitf import text
from minitf.course.hidden import close, graded


def _split_case(rng: np.random.Generator) -> tuple:
    n = int(rng.integers(1, 400))
    return rng.integers(0, 5000, n), float(rng.uniform(0.05, 0.6))  # (N,) ids, val_fraction


def _windows_case(rng: np.random.Generator) -> tuple:
    """Distinct ids (so each window shows where it starts), a seed, and enough windows
    that every possible start is drawn (a miss has probability about n_starts e^-30)."""
    n, length = int(rng.integers(2, 40)), int(rng.integers(1, 9))
    length = min(length, n)
    batch_size = 30 * (n - length + 1)
    return rng.permutation(10_000)[:n], int(rng.integers(2**31)), batch_size, length


def _with_rng(ids: np.ndarray, seed: int, batch_size: int, length: int) -> tuple:
    """A stored case -> the call's arguments: a numpy Generator can't be stored, its seed can."""
    return ids, np.random.default_rng(seed), batch_size, length


def _every_window(ids: np.ndarray, rng: np.random.Generator, batch_size: int,
                  length: int) -> dict:  # fmt: skip
    """What a right answer is measured against: all windows that fit, and the batch size."""
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(ids), length)  # (S, length)
    return {"windows": np.ascontiguousarray(windows), "batch_size": batch_size}


def _valid_windows(got, want: dict) -> str | None:
    """None when `got` is `batch_size` windows that fit and every start occurs."""
    windows, batch_size = np.asarray(want["windows"]), int(want["batch_size"])
    got = np.asarray(got)
    if got.shape != (batch_size, windows.shape[1]):
        return f"has shape {got.shape} where {(batch_size, windows.shape[1])} is expected"
    match = (got[:, None, :] == windows[None, :, :]).all(-1)  # (B, S): row b is window s
    if not match.any(1).all():
        return "has rows that are not consecutive ids of the input (a whole window that fits)"
    if not match.any(0).all():
        return "never starts at some of the places a window fits"
    return None


@graded(points=1, cases=lambda rng: [_split_case(rng) for _ in range(5)],
        hint="the first floor(len(ids) * (1 - val_fraction)) ids, then the rest, in order")
def check_split_by_position(module) -> None:
    for n, fraction in [(10, 0.1), (101, 0.1), (7, 0.5), (1000, 0.25), (3, 0.1)]:
        ids = np.arange(100, 100 + n)  # (N,): distinct values, so positions can be read off
        got = module.split_by_position(ids, fraction)
        assert isinstance(got, tuple) and len(got) == 2, "return a tuple (train_ids, val_ids)"
        train_ids, val_ids = (np.asarray(a) for a in got)
        assert len(train_ids) + len(val_ids) == n, (
            "every id should land in exactly one part: the lengths should add up to len(ids)")
        assert np.array_equal(np.concatenate([train_ids, val_ids]), ids), (
            "the training ids should be the start of the sequence and the validation ids "
            "its end, each in their original order (split by position, don't shuffle)")
        want = math.floor(n * (1 - fraction))
        assert len(train_ids) == want, (
            f"with {n} ids and val_fraction={fraction} the cut is at "
            "floor(len(ids) * (1 - val_fraction)); round down, and keep the training part first")


@graded(points=1, cases=lambda rng: [_windows_case(rng) for _ in range(4)],
        prepare=_with_rng, reference=_every_window, compare=_valid_windows,
        hint="starts from 0 to len(ids) - length inclusive, drawn with the rng you are given; "
        "each row is ids[start : start + length]", borrowed=("minitf.text.windows_batch",))
def check_random_windows(module) -> None:
    ids = np.arange(1000, 1020)  # (20,): each id is its own position + 1000
    rng = np.random.default_rng(0)
    got = np.asarray(module.random_windows(ids, rng, 500, 5))
    assert got.shape == (500, 5), "random_windows(ids, rng, 500, 5) should have shape (500, 5)"
    starts = got[:, 0] - 1000  # (B,)
    assert np.array_equal(got - got[:, :1], np.broadcast_to(np.arange(5), got.shape)), (
        "each window should be consecutive ids: ids[s], ids[s + 1], ..., ids[s + length - 1]")
    assert starts.min() >= 0 and starts.max() <= 15, (
        "a window must fit inside the ids: its start can be at most len(ids) - length")
    assert set(starts.tolist()) == set(range(16)), (
        "every start from 0 to len(ids) - length (inclusive) should be possible: check the "
        "upper bound you give rng.integers (it is exclusive)")
    a = module.random_windows(ids, np.random.default_rng(7), 4, 3)
    b = module.random_windows(ids, np.random.default_rng(7), 4, 3)
    assert np.array_equal(np.asarray(a), np.asarray(b)), (
        "draw the starts with the rng you are given, so the same seed gives the same windows")
    one = np.asarray(module.random_windows(ids, np.random.default_rng(1), 3, 20))
    assert np.array_equal(one, np.tile(ids, (3, 1))), (
        "a window as long as the ids has only one place to start")


def _bits_case(rng: np.random.Generator) -> tuple:
    n_tokens = int(rng.integers(1, 5000))
    return float(rng.uniform(0.1, 8.0)), n_tokens, int(n_tokens * rng.uniform(1.0, 6.0)) + 1


@graded(points=1, cases=lambda rng: [_bits_case(rng) for _ in range(5)], compare=close(1e-9, 1e-6),
        hint="total nats (per token times tokens), in bits (divide by ln 2), per byte",
        borrowed=("minitf.text.bits_per_byte",))
def check_bits_per_byte(module) -> None:
    cases = [(2.0, 10, 40), (math.log(2), 1, 1), (1.2, 64, 170), (4.0, 1000, 2640)]
    for nats, n_tokens, n_bytes in cases:
        got = float(module.bits_per_byte(nats, n_tokens, n_bytes))
        want = text.bits_per_byte(nats, n_tokens, n_bytes)
        in_nats = nats * n_tokens / n_bytes  # the total per byte, but in nats
        if math.isclose(got, in_nats, rel_tol=1e-6) and not math.isclose(got, want, rel_tol=1e-6):
            raise AssertionError("that is still in nats: divide by ln 2 to get bits")
        assert math.isclose(got, want, rel_tol=1e-6), (
            "bits per byte is the total cost in bits (nats per token times tokens, divided "
            "by ln 2) over the number of bytes; check each factor")
    assert math.isclose(float(module.bits_per_byte(math.log(2), 1, 1)), 1.0, rel_tol=1e-6), (
        "ln 2 nats spent on one token of one byte is exactly one bit per byte")
