"""Checks for lesson 10's exercises: the lens's readout, the rank of a token, KL to final.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Compared with `LensResult` and a float64 numpy readout on random
weights and distributions from seeded generators, at 1e-4. Plain numpy references keep
the checks fast: every eager JAX operation compiles once per shape.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from minitf import model
from minitf.course.hidden import close, graded
from minitf.lens import LensResult

TOL = 1e-4

CONFIGS = [
    model.Config(vocab_size=13, n_layer=2, n_head=2, d_model=16, d_mlp=32, max_len=8),
    model.Config(vocab_size=7, n_layer=3, n_head=1, d_model=8, d_mlp=16, max_len=8,
                 tie_embeddings=True),
]


def _readout_params(seed: int, config: model.Config) -> dict:
    """The parameters the readout uses, random (non-trivial norm scale and bias), as numpy."""
    rng = np.random.default_rng(seed)
    V, D = config.vocab_size, config.d_model
    params = {"embed": rng.normal(size=(V, D)).astype(np.float32),
              "ln_final": {"scale": (1 + 0.5 * rng.normal(size=D)).astype(np.float32),
                           "bias": (0.5 * rng.normal(size=D)).astype(np.float32)}}
    if not config.tie_embeddings:
        params["unembed"] = rng.normal(size=(V, D)).astype(np.float32)
    return params


def _reference_readout(resid: np.ndarray, params: dict, config: model.Config) -> np.ndarray:
    """Final norm, unembedding, log-softmax, in float64 numpy. [..., D] -> [..., V]"""
    x = resid.astype(np.float64)
    ln = params["ln_final"]
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + model.LN_EPS)
    normed = normed * ln["scale"] + ln["bias"]  # (..., D)
    w_u = params["embed"] if config.tie_embeddings else params["unembed"]  # (V, D)
    logits = normed @ w_u.T  # (..., V)
    logits -= logits.max(-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # (..., V)


def _lens_case(rng: np.random.Generator) -> tuple:
    D, V = int(rng.integers(2, 20)), int(rng.integers(2, 20))
    config = model.Config(vocab_size=V, n_layer=int(rng.integers(1, 4)), n_head=1, d_model=D,
                          d_mlp=2 * D, max_len=8, tie_embeddings=bool(rng.random() < 0.5))
    params = _readout_params(int(rng.integers(1 << 30)), config)
    shape = (config.n_layer + 1, int(rng.integers(1, 6)), D)  # (L+1, T, D)
    resid = rng.normal(rng.normal(0, 2), rng.uniform(0.5, 4), shape).astype(np.float32)
    return (jnp.asarray(resid), params, config)


def _log_probs_case(rng: np.random.Generator) -> np.ndarray:
    shape = (int(rng.integers(2, 5)), *rng.integers(1, 5, size=rng.integers(1, 3)),
             int(rng.integers(3, 15)))  # (L+1, ..., V)
    return _random_log_probs(int(rng.integers(1 << 30)), tuple(int(n) for n in shape))


@graded(points=2, cases=lambda rng: [_lens_case(rng) for _ in range(4)], compare=close(1e-4),
        hint="the final layer norm with params['ln_final'] (scale and bias), then logits "
        "x @ model.unembed_matrix(params, config).T, then log_softmax over the vocabulary",
        borrowed=("minitf.lens.lens_log_probs", "minitf.lens.logit_lens",
                  "minitf.model.logits_from_resid"))
def check_logit_lens_row(module) -> None:
    for seed, config in enumerate(CONFIGS):
        params = _readout_params(seed, config)
        # (L+1, T, D): residual-like vectors with an offset and a spread, as real ones have
        resid = np.random.default_rng(10 + seed).normal(
            1.0, 3.0, size=(config.n_layer + 1, 5, config.d_model)).astype(np.float32)
        got = np.asarray(module.logit_lens_row(jnp.asarray(resid), params, config))
        V = config.vocab_size
        assert got.shape == (*resid.shape[:-1], V), (
            "logit_lens_row should turn [..., D] into [..., V]: one log-prob per token")
        assert np.allclose(np.exp(got).sum(-1), 1.0, atol=TOL), (
            "each row should be a log-distribution (exp sums to 1): finish with "
            "jax.nn.log_softmax over the last axis")
        if not np.allclose(got, _reference_readout(resid, params, config), atol=TOL):
            tied = " (this model has tie_embeddings=True)" if config.tie_embeddings else ""
            raise AssertionError(
                f"the readout differs from the model's{tied}: apply the final layer norm "
                "params['ln_final'] (scale and bias) first, then multiply by the transposed "
                "unembedding from model.unembed_matrix")


def _random_log_probs(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Random log-distributions over the last axis, float32. -> shape"""
    logits = 2.0 * np.random.default_rng(seed).normal(size=shape)  # (..., V)
    logits -= logits.max(-1, keepdims=True)
    return (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(np.float32)


def _rank_case(rng: np.random.Generator) -> tuple:
    log_probs = _log_probs_case(rng)
    token_id = int(rng.integers(log_probs.shape[-1]))
    flat = log_probs.reshape(-1, log_probs.shape[-1])  # a view: a tie with the token in row 0
    flat[0, (token_id + 1) % log_probs.shape[-1]] = flat[0, token_id]
    return (jnp.asarray(log_probs), token_id)


@graded(points=1, cases=lambda rng: [_rank_case(rng) for _ in range(5)],
        hint="count, per row, the tokens whose log-prob is strictly greater than the token's "
        "own (so the most likely has rank 0 and tied tokens share a rank), as ints",
        borrowed=("minitf.lens.LensResult.rank",))
def check_rank_of(module) -> None:
    log_probs = _random_log_probs(0, (3, 5, 9))  # (L+1, T, V)
    # ties: make tokens 2 and 5 equally likely at one position, 7 and 8 at another
    log_probs[1, 2, 5] = log_probs[1, 2, 2]
    log_probs[0, 4, 8] = log_probs[0, 4, 7]
    lens = LensResult(log_probs=log_probs, tokens=np.zeros(5, dtype=int))
    for token_id in (0, 2, 5, 7, 8):
        got = np.asarray(module.rank_of(jnp.asarray(log_probs), token_id))
        assert got.shape == (3, 5), (
            "rank_of should drop the vocabulary axis: [..., V] -> [...], one rank per row")
        assert np.issubdtype(got.dtype, np.integer), "ranks should be integers"
        want = np.stack([lens.rank(token_id, t) for t in range(5)], axis=1)  # (L+1, T)
        if not np.array_equal(got, want):
            if np.array_equal(got, want + 1):
                raise AssertionError("the most likely token should have rank 0, not 1")
            raise AssertionError(
                "wrong ranks: count the tokens whose log-prob is strictly greater than the "
                "token's own (tied tokens share a rank)")


@graded(points=1, cases=lambda rng: [(jnp.asarray(_log_probs_case(rng)),) for _ in range(4)],
        compare=close(1e-4),
        hint="KL(final || layer): sum over the vocabulary of p_final * (log p_final - "
        "log p_layer), with p_final = exp of the last row",
        borrowed=("minitf.lens.LensResult.kl_to_final", "minitf.tuned_lens.kl_per_layer"))
def check_kl_to_final(module) -> None:
    for seed, shape in enumerate([(3, 4, 6), (2, 2, 5, 11)]):
        log_probs = _random_log_probs(10 + seed, shape)  # (L+1, ..., V)
        got = np.asarray(module.kl_to_final(jnp.asarray(log_probs)))
        assert got.shape == shape[:-1], (
            "kl_to_final should drop the vocabulary axis: [L+1, ..., V] -> [L+1, ...]")
        assert np.allclose(got[-1], 0.0, atol=TOL), "the last row's KL to itself should be 0"
        assert np.all(got > -TOL), "a KL divergence is never negative"
        if shape[0] == 3:  # LensResult holds one sequence: (L+1, T, V)
            want = LensResult(log_probs=log_probs, tokens=np.zeros(shape[1], int)).kl_to_final()
        else:
            final = log_probs[-1:]  # (1, ..., V)
            want = (np.exp(final) * (final - log_probs)).sum(-1)  # (L+1, ...)
        if not np.allclose(got, want, atol=TOL):
            reverse = (np.exp(log_probs) * (log_probs - log_probs[-1:])).sum(-1)
            if np.allclose(got, reverse, atol=TOL):
                raise AssertionError(
                    "that is KL(layer || final); weight by the final row's probabilities: "
                    "KL(final || layer)")
            raise AssertionError(
                "wrong values: sum over the vocabulary of p_final * (log p_final - log p_layer), "
                "with p_final = exp of the last row")
