"""Checks for lesson 5's exercises: the causal mask, one head, several heads.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Compared with `minitf.model.attend` at a 1e-5 tolerance, with
explicit random keys.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from minitf import model

TOL = 1e-5


def _weights(seed: int, D: int, K: int) -> tuple[jax.Array, ...]:
    kx, kq, kk, kv = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(kx, (7, D))  # (T, D)
    ws = [jax.random.normal(k, (D, K)) / math.sqrt(D) for k in (kq, kk, kv)]
    return (x, *ws)


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
