"""Checks for lesson 9's exercises: temperature, the top-k filter, the top-p filter.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Logits come from seeded numpy generators (random normals: no ties),
sampling from explicit `jax.random` keys; results are compared with `minitf.sample`
(`sample_next`, `filter_top_k`, `filter_top_p`) and with invariants of each rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minitf import sample
from minitf.course.hidden import close, graded

TOL = 1e-5


def _logits(seed: int, shape: tuple[int, ...], scale: float = 2.0) -> jax.Array:
    rng = np.random.default_rng(seed)
    return jnp.asarray(scale * rng.normal(size=shape), jnp.float32)  # (..., V)


def _logits_case(rng: np.random.Generator) -> jax.Array:
    shape = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(0, 2))) + (
        int(rng.integers(2, 20)),)  # (V,) or (B, V)
    return jnp.asarray(rng.normal(0, rng.uniform(0.5, 3.0), shape), jnp.float32)


@graded(points=1, compare=close(atol=1e-5),
        cases=lambda rng: [(_logits_case(rng), t) for t in
                           [0.0, *np.round(rng.uniform(0.1, 3.0, 4), 3).tolist()]],
        hint="divide the logits by the temperature, then softmax over the last axis; "
        "temperature 0 puts probability 1 on each row's largest logit")
def check_apply_temperature(module) -> None:
    logits = _logits(0, (6, 12))  # (B, V)
    for t in (0.3, 1.0, 2.5):
        probs = np.asarray(module.apply_temperature(logits, t))
        assert probs.shape == logits.shape, "apply_temperature should keep the shape (..., V)"
        assert np.allclose(probs.sum(-1), 1.0, atol=TOL), (
            f"at temperature {t} a row of probabilities doesn't sum to 1: softmax over the "
            "last axis")
        want = np.asarray(jax.nn.softmax(logits / t, axis=-1))
        assert np.allclose(probs, want, atol=TOL), (
            f"wrong probabilities at temperature {t}: divide the logits by the temperature, "
            "then softmax (temperature 1 leaves the softmax unchanged)")
    one = np.asarray(module.apply_temperature(logits[0], 0.7))  # a single row (V,)
    assert one.shape == (12,), "a single row of logits (V,) should give (V,) probabilities"
    greedy = np.asarray(module.apply_temperature(logits, 0))
    want = np.eye(12)[np.asarray(logits).argmax(-1)]  # (B, V) one-hot
    assert np.isfinite(greedy).all() and np.allclose(greedy, want, atol=TOL), (
        "temperature 0 is greedy: probability 1 on the largest logit of each row, 0 "
        "elsewhere (and no division by zero)")
    # what minitf.sample.sample_next draws at T = 1.6 follows these probabilities
    row = _logits(1, (12,), scale=1.0)  # (V,)
    draws = sample.sample_next(jnp.broadcast_to(row, (20_000, 12)), jax.random.key(0), 1.6)
    freq = np.bincount(np.asarray(draws), minlength=12) / 20_000
    assert np.allclose(freq, np.asarray(module.apply_temperature(row, 1.6)), atol=0.015), (
        "the frequencies minitf.sample.sample_next draws at this temperature don't match "
        "your probabilities: divide by the temperature (don't multiply)")


def _kept(filtered: jax.Array) -> np.ndarray:
    return np.isfinite(np.asarray(filtered))


def _same_filter(got: jax.Array, want: jax.Array, logits: jax.Array) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or not (_kept(got) == _kept(want)).all():
        return False
    kept = _kept(want)
    return bool(np.allclose(got[kept], np.asarray(logits)[kept], atol=TOL)
                and (got[~kept] == -np.inf).all())


@graded(points=1, compare=close(atol=1e-6),
        cases=lambda rng: [(x, int(rng.integers(1, x.shape[-1] + 1)))
                           for x in (_logits_case(rng) for _ in range(5))],
        hint="keep the k largest logits of each row (along the last axis) unchanged, -inf "
        "elsewhere", borrowed=("minitf.sample.filter_top_k",))
def check_top_k_filter(module) -> None:
    logits = _logits(2, (6, 12))  # (B, V)
    for k in (1, 3, 12):
        got = jnp.asarray(module.top_k_filter(logits, k))
        assert got.shape == logits.shape, "top_k_filter should keep the shape (..., V)"
        kept = _kept(got)
        assert (kept.sum(-1) == k).all(), (
            f"with k={k} every row should keep exactly k logits (these rows have no ties) "
            "and set the others to -inf")
        assert (np.asarray(got)[~kept] == -np.inf).all(), "removed logits should be -inf"
        assert np.allclose(np.asarray(got)[kept], np.asarray(logits)[kept], atol=TOL), (
            "the kept logits should be left unchanged")
        assert _same_filter(got, sample.filter_top_k(logits, k), logits), (
            f"with k={k} some row keeps the wrong logits: keep the k *largest* of each row "
            "(compare along the last axis)")
    row = logits[0]  # (V,)
    assert _same_filter(module.top_k_filter(row, 4), sample.filter_top_k(row, 4), row), (
        "a single row of logits (V,) should work too")


@graded(points=2, compare=close(atol=1e-6),
        cases=lambda rng: [(_logits_case(rng), float(np.round(rng.uniform(0.05, 0.95), 3)))
                           for _ in range(5)],
        hint="sort by probability, most likely first; keep a token when the tokens before "
        "it add up to less than p; the kept logits stay unchanged, the rest become -inf",
        borrowed=("minitf.sample.filter_top_p",))
def check_top_p_filter(module) -> None:
    logits = _logits(3, (6, 12))  # (B, V)
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))  # (B, V)
    for p in (0.05, 0.5, 0.9):
        got = jnp.asarray(module.top_p_filter(logits, p))
        assert got.shape == logits.shape, "top_p_filter should keep the shape (..., V)"
        kept = _kept(got)
        assert kept[np.arange(6), probs.argmax(-1)].all(), (
            f"with p={p} the most likely token was removed: it is always needed")
        mass = (probs * kept).sum(-1)  # (B,)
        assert (mass >= p - 1e-6).all(), (
            f"with p={p} the kept tokens' probabilities add up to less than p: keep the "
            "token that carries the running total past p")
        least = np.where(kept, probs, np.inf).min(-1)  # (B,): the least likely kept token
        assert (mass - least < p + 1e-6).all(), (
            f"with p={p} some row keeps more tokens than it needs: keep the *fewest* most "
            "likely tokens that reach p")
        assert _same_filter(got, sample.filter_top_p(logits, p), logits), (
            f"with p={p} some row keeps the wrong tokens: sort by probability, most likely "
            "first, and keep the kept logits unchanged (others -inf)")
    row = logits[0]  # (V,)
    assert _same_filter(module.top_p_filter(row, 0.6), sample.filter_top_p(row, 0.6), row), (
        "a single row of logits (V,) should work too")
