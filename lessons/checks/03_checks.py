"""Checks for lesson 3's exercises: the backward passes of softmax cross-entropy, a linear
layer and layer norm, each compared with `jax.grad` / `jax.vjp` of the forward function.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Inputs come from explicit random keys; tolerance 1e-5 (float32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from minitf import model

TOL = 1e-5


def _mean_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # (N, V)
    return -jnp.take_along_axis(log_probs, targets[:, None], axis=-1).mean()


def check_cross_entropy_backward(module) -> None:
    for seed, (N, V) in enumerate([(1, 2), (5, 7), (16, 12)]):
        k1, k2 = jax.random.split(jax.random.key(seed))
        logits = 3.0 * jax.random.normal(k1, (N, V))  # (N, V)
        targets = jax.random.randint(k2, (N,), 0, V)  # (N,)
        got = jnp.asarray(module.cross_entropy_backward(logits, targets))
        assert got.shape == (N, V), "the gradient has the shape of the logits, (N, V)"
        want = jax.grad(_mean_cross_entropy)(logits, targets)
        if jnp.allclose(got, want * N, atol=TOL) and N > 1:
            raise AssertionError("that is the gradient of the sum over rows: the loss is the "
                                 "mean, so divide by the number of rows")
        assert jnp.allclose(got.sum(-1), 0.0, atol=TOL), (
            "each row of the gradient should sum to 0: the probabilities sum to 1, and so "
            "does the one-hot vector of the target")
        assert jnp.allclose(got, want, atol=TOL), (
            "not the gradient: for each row it is softmax(logits) minus the one-hot vector of "
            "the target, divided by N")


def check_linear_backward(module) -> None:
    for seed, (N, I, O) in enumerate([(1, 1, 1), (4, 3, 5), (9, 16, 8)]):
        kx, kw, kb, kd = jax.random.split(jax.random.key(10 + seed), 4)
        x = jax.random.normal(kx, (N, I))
        w = jax.random.normal(kw, (I, O))
        bias = jax.random.normal(kb, (O,))
        d_out = jax.random.normal(kd, (N, O))
        got = module.linear_backward(x, w, d_out)
        assert isinstance(got, tuple) and len(got) == 3, "return a tuple (dx, dw, dbias)"
        dx, dw, dbias = (jnp.asarray(g) for g in got)
        assert (dx.shape, dw.shape, dbias.shape) == ((N, I), (I, O), (O,)), (
            f"with x {(N, I)} and w {(I, O)}: dx should have x's shape, dw w's and dbias (O,)")
        _, vjp = jax.vjp(lambda x_, w_, b_: x_ @ w_ + b_[None], x, w, bias)
        want_dx, want_dw, want_dbias = vjp(d_out)
        assert jnp.allclose(dbias, want_dbias, atol=TOL), (
            "dbias is off: the bias is added to every row, so its gradient sums d_out over rows")
        assert jnp.allclose(dw, want_dw, atol=TOL), (
            "dw is off: w[i, o] multiplies x[n, i] in every row n; sum x[n, i] * d_out[n, o] "
            "over the rows (a matrix product with x transposed)")
        assert jnp.allclose(dx, want_dx, atol=TOL), (
            "dx is off: x[n, i] meets every w[i, o]; sum d_out[n, o] * w[i, o] over o "
            "(a matrix product with w transposed)")


def _normalize(x: jax.Array) -> jax.Array:
    D = x.shape[-1]
    return model.layer_norm(x, {"scale": jnp.ones(D), "bias": jnp.zeros(D)})  # (N, D)


def check_layer_norm_backward(module) -> None:
    for seed, (N, D) in enumerate([(1, 2), (3, 8), (6, 64)]):
        kx, kd = jax.random.split(jax.random.key(20 + seed))
        x = 1.5 + 2.0 * jax.random.normal(kx, (N, D))  # (N, D): off-centre, not unit scale
        d_out = jax.random.normal(kd, (N, D))
        got = jnp.asarray(module.layer_norm_backward(x, d_out))
        assert got.shape == (N, D), "dx has the shape of x"
        _, vjp = jax.vjp(_normalize, x)
        (want,) = vjp(d_out)
        assert jnp.allclose(got.sum(-1), 0.0, atol=1e-4), (
            "each row of dx should sum to 0: adding the same number to every entry of x "
            "doesn't change the normalized vector")
        if not jnp.allclose(got, want, atol=1e-4, rtol=1e-4):
            sigma = jnp.sqrt(x.var(-1, keepdims=True) + model.LN_EPS)
            if jnp.allclose(got, d_out / sigma, atol=1e-4):
                raise AssertionError("that treats the mean and the variance as constants: "
                                     "both depend on x too (subtract the two extra terms)")
            raise AssertionError(
                "not the gradient: per row, (d_out - mean(d_out) - y * mean(d_out * y)) / "
                "sigma, with y the normalized x and sigma = sqrt(var + model.LN_EPS)")
    # a constant row has variance 0: sigma is sqrt(eps), and nothing may become NaN
    flat = module.layer_norm_backward(jnp.ones((2, 4)), jnp.ones((2, 4)))
    assert bool(jnp.all(jnp.isfinite(jnp.asarray(flat)))), (
        "a constant row gives NaN or inf: add model.LN_EPS to the variance before the root")
