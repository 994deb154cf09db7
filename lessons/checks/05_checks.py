"""Checks for lesson 5's exercises: the causal mask, one head, several heads.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Compared with `minitf.model.attend` at a 1e-5 tolerance, with
explicit random keys.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from minitf import model
from minitf.course.hidden import close, graded

TOL = 1e-5


def _weights(seed: int, D: int, K: int) -> tuple[jax.Array, ...]:
    kx, kq, kk, kv = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(kx, (7, D))  # (T, D)
    ws = [jax.random.normal(k, (D, K)) / math.sqrt(D) for k in (kq, kk, kv)]
    return (x, *ws)


def _attention_case(rng: np.random.Generator, D: int, K: int) -> tuple:
    T = int(rng.integers(1, 10))
    x = rng.normal(size=(T, D))  # (T, D)
    ws = [rng.normal(size=(D, K)) / np.sqrt(D) for _ in range(3)]  # 3 x (D, K)
    mask = np.tril(np.ones((T, T), bool)) if rng.random() < 0.5 else (
        rng.random((T, T)) < 0.6) | np.eye(T, dtype=bool)  # causal, or any with the diagonal
    return tuple(jnp.asarray(a, jnp.float32) for a in (x, *ws)) + (jnp.asarray(mask),)


@graded(points=1, cases=lambda rng: [(int(T),) for T in rng.integers(1, 16, size=4)],
        hint="a (T, T) bool array, True on and below the diagonal (key s <= query t)",
        borrowed=("minitf.model.causal_mask",))
def check_causal_mask(module) -> None:
    for T in (1, 2, 5, 9):
        mask = jnp.asarray(module.causal_mask(T))
        assert mask.shape == (T, T), f"causal_mask({T}) should have shape ({T}, {T})"
        assert mask.dtype == jnp.bool_, "causal_mask should be a bool array (True = may attend)"
        assert bool(jnp.all(jnp.diag(mask))), "every position must be allowed to see itself"
        assert not bool(jnp.any(jnp.triu(mask, 1))), (
            "the mask lets some position see a later one (True above the diagonal)")
        assert bool(jnp.all(mask[jnp.tril_indices(T)])), (
            "the mask hides some earlier position (False below the diagonal)")
    # the leaky-mask test: with this mask, attention's output at t can't depend on x[s > t]
    x, w_q, w_k, w_v = _weights(0, 8, 8)
    mask = jnp.asarray(module.causal_mask(x.shape[0]))

    def head(x_: jax.Array) -> jax.Array:
        q, k, v = ((x_ @ w)[:, None] for w in (w_q, w_k, w_v))  # (T, 1, K)
        return model.attend(q, k, v, mask)[0][:, 0]  # (T, K)

    dep = jnp.abs(jax.jacobian(head)(x)).sum(axis=(1, 3))  # (T, T)
    assert float(jnp.triu(dep, 1).sum()) == 0.0, "outputs depend on future inputs: a leaky mask"


@graded(points=2, compare=close(1e-5),
        cases=lambda rng: [_attention_case(rng, int(rng.integers(2, 17)), int(rng.integers(1, 9)))
                           for _ in range(4)],
        hint="scores q @ k.T / sqrt(K), the given mask applied (masked scores at "
        "jnp.finfo(dtype).min), softmax over the keys (axis -1), then out = pattern @ v",
        borrowed=("minitf.model.attend",), forbidden=("dot_product_attention",))
def check_self_attention(module) -> None:
    for seed, (D, K) in enumerate([(8, 8), (16, 4)]):
        x, w_q, w_k, w_v = _weights(seed, D, K)
        T = x.shape[0]
        for name, mask in [("causal", model.causal_mask(T)),
                           ("all-True", jnp.ones((T, T), dtype=bool))]:
            got = module.self_attention(x, w_q, w_k, w_v, mask)
            assert isinstance(got, tuple) and len(got) == 2, "return a tuple (out, pattern)"
            out, pattern = (jnp.asarray(a) for a in got)
            assert out.shape == (T, K), f"out should have shape (T, K) = ({T}, {K})"
            assert pattern.shape == (T, T), f"pattern should have shape (T, T) = ({T}, {T})"
            assert jnp.allclose(pattern.sum(-1), 1.0, atol=TOL), (
                "each row of the pattern should sum to 1: softmax over the key axis (-1)")
            q, k, v = ((x @ w)[:, None] for w in (w_q, w_k, w_v))  # (T, 1, K)
            z, ref = model.attend(q, k, v, mask)
            assert jnp.allclose(pattern, ref[0], atol=TOL), (
                f"the pattern is off with a {name} mask: scale the scores by 1/sqrt(K), "
                "apply the mask you are given, then softmax over keys")
            assert jnp.allclose(out, z[:, 0], atol=TOL), (
                "the pattern is right but out isn't: out = pattern @ v")


def _heads_case(rng: np.random.Generator) -> tuple:
    H = int(rng.choice([1, 2, 4]))
    x, _, _, _, mask = _attention_case(rng, 4 * H * int(rng.integers(1, 3)), 1)
    D = x.shape[1]
    w_q, w_k, w_v = (jnp.asarray(rng.normal(size=(D, D)) / np.sqrt(D), jnp.float32)
                     for _ in range(3))
    return (x, w_q, w_k, w_v, H, mask)


@graded(points=2, cases=lambda rng: [_heads_case(rng) for _ in range(4)], compare=close(1e-5),
        hint="reshape (T, D) to (T, H, K) so head h gets dimensions h*K..(h+1)*K, scale by "
        "1/sqrt(K) (the head width), and concatenate the heads in order",
        borrowed=("minitf.model.attend", "minitf.model.qkv"),
        forbidden=("dot_product_attention",))
def check_multi_head_attention(module) -> None:
    for seed, H in enumerate([1, 2, 4]):
        x, w_q, w_k, w_v = _weights(10 + seed, 16, 16)
        T = x.shape[0]
        mask = model.causal_mask(T)
        out = jnp.asarray(module.multi_head_attention(x, w_q, w_k, w_v, H, mask))
        assert out.shape == (T, 16), f"the output should have shape (T, D) = ({T}, 16)"
        q, k, v = (model.split_heads(x @ w, H) for w in (w_q, w_k, w_v))  # (T, H, K)
        z, _ = model.attend(q, k, v, mask)  # (T, H, K)
        if not jnp.allclose(out, z.reshape(T, 16), atol=TOL):
            hint = ("with one head it should equal exercise 2" if H == 1 else
                    "reshape (T, D) to (T, H, K) so head h gets dimensions h*K..(h+1)*K, "
                    "scale by 1/sqrt(K) (the head width, not D), and concatenate heads in order")
            raise AssertionError(f"wrong output with n_head={H}: {hint}")
