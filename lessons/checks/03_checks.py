"""Checks for lesson 3's exercises: the backward passes of softmax cross-entropy, a linear
layer and layer norm, each compared with `jax.grad` / `jax.vjp` of the forward function.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Inputs come from explicit random keys; tolerance 1e-5 (float32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minitf import model
from minitf.course.hidden import close, graded

TOL = 1e-5
# autodiff does the backward pass for you: these exercises ask for it by hand
AUTODIFF = ("jax.grad", "jax.value_and_grad", "jax.vjp", "jax.jvp", "jax.linearize",
            "jax.jacrev", "jax.jacfwd", "jax.linear_transpose")


def _f32(a: np.ndarray) -> jax.Array:
    return jnp.asarray(a, jnp.float32)


def _cross_entropy_case(rng: np.random.Generator) -> tuple:
    N, V = int(rng.integers(1, 17)), int(rng.integers(2, 21))
    return (_f32(rng.uniform(0.5, 4) * rng.normal(size=(N, V))), jnp.asarray(rng.integers(0, V, N)))


def _linear_case(rng: np.random.Generator) -> tuple:
    N, I, O = (int(n) for n in rng.integers(1, 17, size=3))
    return (_f32(rng.normal(size=(N, I))), _f32(rng.normal(size=(I, O)) / np.sqrt(I)),
            _f32(rng.normal(size=(N, O))))


def _layer_norm_case(rng: np.random.Generator) -> tuple:
    N, D = int(rng.integers(1, 9)), int(rng.integers(2, 33))
    x = rng.normal(rng.uniform(-3, 3), rng.uniform(0.5, 3), size=(N, D))  # off-centre rows
    if rng.random() < 0.5:  # a constant row (variance 0); integers keep its mean exact
        x[rng.integers(N)] = float(rng.integers(-3, 4))
    return (_f32(x), _f32(rng.normal(size=(N, D))))


def _mean_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # (N, V)
    return -jnp.take_along_axis(log_probs, targets[:, None], axis=-1).mean()


@graded(points=1, cases=lambda rng: [_cross_entropy_case(rng) for _ in range(4)],
        compare=close(atol=1e-5, rtol=1e-5),
        hint="a row's gradient is its probabilities minus the one-hot vector of its target; "
        "the loss is the mean over the N rows", borrowed=AUTODIFF)
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


@graded(points=2, cases=lambda rng: [_linear_case(rng) for _ in range(4)],
        compare=close(atol=1e-5, rtol=1e-5),
        hint="return (dx, dw, dbias) with the shapes of x, w and the bias: each is a "
        "matrix product of d_out with the other factor transposed, or a sum over rows",
        borrowed=AUTODIFF)
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


@graded(points=3, cases=lambda rng: [_layer_norm_case(rng) for _ in range(4)],
        compare=close(atol=1e-4, rtol=1e-4),
        hint="the mean and the variance depend on x too, which adds two terms to d_out / "
        "sigma; add model.LN_EPS to the variance, so that a constant row stays finite",
        borrowed=AUTODIFF)
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
