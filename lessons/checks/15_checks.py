"""Checks for lesson 15's exercises: the lm_head as a nearest-vector lookup, and the KL
divergence that measures what adding a token does to the old predictions.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. `nearest_tokens` is compared with `minitf.vectors.nearest_tokens`,
`kl_old_to_new` with the definition and with the identity KL = -log(1 - p(new)) that
holds when the old tokens' logits are unchanged; random inputs use fixed seeds.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from minitf import vectors
from minitf.course.hidden import close, graded
from minitf.model import Config

TOL = 1e-5
V, D = 13, 8
CONFIG = Config(vocab_size=V, n_layer=1, n_head=2, d_model=D, d_mlp=16, max_len=4)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _nearest_case(rng: np.random.Generator) -> tuple:
    V, D = int(rng.integers(2, 30)), int(rng.integers(2, 16))
    return (jnp.asarray(rng.normal(size=D), jnp.float32),
            jnp.asarray(rng.normal(size=(V, D)), jnp.float32), int(rng.integers(1, V + 1)))


def _kl_case(rng: np.random.Generator) -> tuple:
    lead = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(1, 3)))
    V, n = int(rng.integers(2, 15)), int(rng.integers(1, 4))
    old = rng.normal(0, 2, (*lead, V)).astype(np.float32)
    new = np.concatenate([old + rng.normal(0, rng.uniform(0, 1)) * rng.normal(size=old.shape),
                          rng.normal(0, 2, (*lead, n))], axis=-1).astype(np.float32)
    return (jnp.asarray(old), jnp.asarray(new))


@graded(points=2, cases=lambda rng: [_nearest_case(rng) for _ in range(5)], compare=close(1e-5),
        hint="score each row by its dot product with the vector, then the k best ids, best "
        "first, with their scores", borrowed=("minitf.vectors.nearest_tokens",))
def check_nearest_tokens(module) -> None:
    rng = np.random.default_rng(0)
    unembed = rng.normal(size=(V, D)).astype(np.float32)  # (V, D)
    for seed, k in enumerate([1, 3, V]):
        vector = np.random.default_rng(10 + seed).normal(size=D).astype(np.float32)  # (D,)
        got = module.nearest_tokens(jnp.asarray(vector), jnp.asarray(unembed), k)
        assert isinstance(got, tuple) and len(got) == 2, "return a tuple (ids, scores)"
        ids, scores = (np.asarray(a) for a in got)
        assert ids.shape == (k,) and scores.shape == (k,), f"with k={k}, return k ids and k scores"
        want_ids, want_scores = vectors.nearest_tokens({"unembed": unembed}, CONFIG, vector, k)
        assert np.allclose(scores, np.asarray(want_scores), atol=TOL), (
            f"the scores are off for k={k}: score each row by its dot product with the vector "
            "(the logits), and list the largest first")
        assert np.array_equal(ids, np.asarray(want_ids)), (
            f"the ids are off for k={k}: they should be the rows those scores belong to, "
            "best first")


@graded(points=2, cases=lambda rng: [_kl_case(rng) for _ in range(5)], compare=close(1e-4),
        hint="log-softmax old and new over their own vocabularies, keep the first V of new, "
        "then sum p_old * (log p_old - log p_new)")
def check_kl_old_to_new(module) -> None:
    rng = np.random.default_rng(1)
    old = rng.normal(0.0, 2.0, (3, 5, V)).astype(np.float32)  # (B, T, V)
    # the same model: zero divergence
    same = np.asarray(module.kl_old_to_new(jnp.asarray(old), jnp.asarray(old)))
    assert same.shape == (3, 5), "return one KL per position: the shape of the logits minus V"
    assert np.allclose(same, 0.0, atol=TOL), "identical logits should give KL = 0"
    # one new token, old logits unchanged: KL = -log(1 - p(new))
    extra = rng.normal(0.0, 2.0, (3, 5, 1)).astype(np.float32)
    grown = np.concatenate([old, extra], axis=-1)  # (B, T, V + 1)
    got = np.asarray(module.kl_old_to_new(jnp.asarray(old), jnp.asarray(grown)))
    p_new = np.exp(_log_softmax(grown)[..., -1])  # (B, T)
    assert got.shape == (3, 5), "return one KL per position: the shape of the logits minus V"
    assert np.allclose(got, -np.log1p(-p_new), atol=1e-4), (
        "wrong KL when one token is added: normalize old and new logits separately "
        "(log-softmax over each one's own vocabulary), then compare the first V entries")
    # everything different, three new tokens
    new = rng.normal(0.0, 2.0, (3, 5, V + 3)).astype(np.float32)
    got = np.asarray(module.kl_old_to_new(jnp.asarray(old), jnp.asarray(new)))
    log_old, log_new = _log_softmax(old), _log_softmax(new)[..., :V]
    want = (np.exp(log_old) * (log_old - log_new)).sum(-1)  # (B, T)
    assert np.allclose(got, want, atol=1e-4), (
        "wrong KL(old || new): sum over the old tokens of p_old * (log p_old - log p_new), "
        "weighted by the OLD probabilities")
    assert np.all(got >= -1e-5), "a KL divergence is never negative"
