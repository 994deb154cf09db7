"""Checks for lesson 6's exercises: layer norm, the MLP, one transformer block, and the
parameter count formula.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Random configs use explicit keys; the block is compared with
`minitf.model.forward`'s cached residuals at a 1e-5 tolerance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minitf import model
from minitf.course.hidden import close, graded

CONFIGS = [
    model.Config(vocab_size=11, n_layer=1, n_head=1, d_model=8, d_mlp=16, max_len=5),
    model.Config(vocab_size=50, n_layer=3, n_head=4, d_model=32, d_mlp=64, max_len=20),
    model.Config(vocab_size=7, n_layer=2, n_head=2, d_model=12, d_mlp=48, max_len=9,
                 tie_embeddings=True),
]


# jitted once per config: eager forward compiles every small op separately, which is slow
_forward = jax.jit(lambda p, t, c: model.forward(p, t, c, cache=True), static_argnums=2)


@jax.jit
def _perturbed(params: dict, key: jax.Array) -> dict:
    """Random, non-zero biases and norms, so that every term of the block matters."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree_util.tree_unflatten(tree, noisy)


def _norm_params(seed: int, D: int) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(jax.random.key(seed))
    return 1.0 + 0.3 * jax.random.normal(k1, (D,)), 0.3 * jax.random.normal(k2, (D,))


def _f32(a: np.ndarray) -> jax.Array:
    return jnp.asarray(a, jnp.float32)


def _leading(rng: np.random.Generator) -> tuple[int, ...]:
    """0 to 2 leading axes: the pieces of a block work on [..., D]."""
    return tuple(int(n) for n in rng.integers(1, 6, size=int(rng.integers(0, 3))))


def _layer_norm_case(rng: np.random.Generator) -> tuple:
    D = int(rng.integers(1, 17))
    x = rng.normal(rng.uniform(-3, 3), rng.uniform(0.5, 3), size=(*_leading(rng), D))
    if x.ndim > 1 and rng.random() < 0.5:  # a constant vector; an integer keeps its mean exact
        x[(0,) * (x.ndim - 1)] = float(rng.integers(-3, 4))
    return (_f32(x), _f32(1 + 0.3 * rng.normal(size=D)), _f32(0.3 * rng.normal(size=D)))


@graded(points=1, cases=lambda rng: [_layer_norm_case(rng) for _ in range(4)],
        compare=close(atol=1e-5, rtol=1e-5),
        hint="mean and (biased) variance over the last axis only, model.LN_EPS added to the "
        "variance inside the root, then times scale plus bias",
        borrowed=("minitf.model.layer_norm", "jax.nn.standardize"))
def check_layer_norm(module) -> None:
    for seed, shape in enumerate([(1, 2), (5, 8), (2, 3, 16)]):
        D = shape[-1]
        x = 2.0 + 3.0 * jax.random.normal(jax.random.key(50 + seed), shape)  # off-centre, wide
        scale, bias = _norm_params(seed, D)
        got = jnp.asarray(module.layer_norm(x, scale, bias))
        assert got.shape == x.shape, "layer_norm should keep the shape of x"
        plain = jnp.asarray(module.layer_norm(x, jnp.ones(D), jnp.zeros(D)))
        assert jnp.allclose(plain.mean(-1), 0.0, atol=1e-4), (
            "with scale 1 and bias 0 each vector should have mean 0: subtract the mean over "
            "the last axis")
        var = x.var(-1)  # each normalized vector's variance is var / (var + eps), about 1
        assert jnp.allclose(plain.var(-1), var / (var + model.LN_EPS), atol=1e-4), (
            "with scale 1 and bias 0 each vector should have variance 1: divide by the "
            "square root of its variance (plus model.LN_EPS), over the last axis")
        want = model.layer_norm(x, {"scale": scale, "bias": bias})
        assert jnp.allclose(got, want, atol=1e-5), (
            "the normalization is right but not the rest: multiply by scale, then add bias")
    tiny = jnp.asarray(module.layer_norm(jnp.full((2, 4), 3.0), jnp.ones(4), jnp.zeros(4)))
    assert bool(jnp.all(jnp.isfinite(tiny))), (
        "a constant vector gives NaN or inf: add model.LN_EPS to the variance")


def _mlp_case(rng: np.random.Generator) -> tuple:
    D, M = int(rng.integers(1, 13)), int(rng.integers(1, 33))
    params = {"w_in": rng.normal(size=(D, M)) / np.sqrt(D), "b_in": rng.normal(size=M),
              "w_out": rng.normal(size=(M, D)) / np.sqrt(M), "b_out": rng.normal(size=D)}
    return (_f32(rng.normal(size=(*_leading(rng), D))), {k: _f32(v) for k, v in params.items()})


@graded(points=1, cases=lambda rng: [_mlp_case(rng) for _ in range(4)],
        compare=close(atol=1e-5, rtol=1e-5),
        hint="x @ w_in + b_in, then GELU by the tanh formula (not the exact erf form, not "
        "ReLU), then @ w_out + b_out",
        borrowed=("minitf.model.mlp", "jax.nn.gelu"))
def check_mlp(module) -> None:
    config = CONFIGS[1]
    params = jax.jit(model.init_params, static_argnums=0)(config, jax.random.key(3))
    params = _perturbed(params, jax.random.key(4))
    mlp_params = params["blocks"][0]["mlp"]
    for seed, shape in enumerate([(7, config.d_model), (2, 5, config.d_model)]):
        x = jax.random.normal(jax.random.key(60 + seed), shape)
        got = jnp.asarray(module.mlp(x, mlp_params))
        assert got.shape == x.shape, "mlp should return vectors of width D, like its input"
        want = model.mlp(x, mlp_params)
        pre = model.linear(x, mlp_params["w_in"], mlp_params["b_in"])  # (..., M)
        if not jnp.allclose(got, want, atol=1e-5):
            for name, hidden in (("the exact GELU (with erf)", jax.nn.gelu(pre, approximate=False)),
                                 ("ReLU", jnp.maximum(pre, 0))):  # fmt: skip
                other = model.linear(hidden, mlp_params["w_out"], mlp_params["b_out"])
                if jnp.allclose(got, other, atol=1e-5):
                    raise AssertionError(f"that is {name}; use GELU's tanh formula from the "
                                         "lesson")
        assert jnp.allclose(got, want, atol=1e-5), (
            "the MLP differs from GPT-2's: x @ w_in + b_in, then GELU (tanh form), then "
            "@ w_out + b_out")


def _random_config(rng: np.random.Generator) -> model.Config:
    n_head = int(rng.choice([1, 2, 4]))
    d_model = n_head * int(rng.integers(2, 5))
    return model.Config(vocab_size=int(rng.integers(5, 40)), n_layer=int(rng.integers(1, 4)),
                        n_head=n_head, d_model=d_model, d_mlp=d_model * int(rng.integers(1, 5)),
                        max_len=int(rng.integers(2, 12)), tie_embeddings=bool(rng.random() < .5))


def _block_case(rng: np.random.Generator) -> tuple:
    """A random block (every weight, bias and norm non-trivial) and a residual to run it on."""
    config = _random_config(rng)
    shapes = jax.eval_shape(lambda: model.init_params(config, jax.random.key(0)))["blocks"][0]
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(0.3, 0.5, s.shape), jnp.float32),
                          shapes)
    T = int(rng.integers(1, 8))
    resid = jnp.asarray(rng.normal(0.5, 2.0, (T, config.d_model)), jnp.float32)  # (T, D)
    return (resid, params, config.n_head)


@graded(points=3, cases=lambda rng: [_block_case(rng) for _ in range(3)],
        compare=close(atol=1e-4, rtol=1e-4),
        hint="add both outputs to the stream (resid + ...), normalize before each part with "
        "its own norm (ln1, ln2), and apply the causal mask",
        borrowed=("minitf.model.block", "minitf.model.forward", "minitf.model.layer_norm",
                  "minitf.model.mlp", "minitf.model.attend", "minitf.model.qkv",
                  "minitf.model.split_heads", "minitf.model.attn_output"),
        forbidden=("dot_product_attention",))
def check_block(module) -> None:
    for seed, config in enumerate(CONFIGS[1:2]):
        params = jax.jit(model.init_params, static_argnums=0)(config, jax.random.key(seed))
        params = _perturbed(params, jax.random.key(100 + seed))
        tokens = jax.random.randint(jax.random.key(seed), (1, config.max_len), 0,
                                    config.vocab_size)
        _, acts = _forward(params, tokens, config)
        for layer in range(config.n_layer):
            resid_pre = acts[f"blocks.{layer}.resid_pre"][0]  # (T, D)
            got = jnp.asarray(module.block(resid_pre, params["blocks"][layer], config.n_head))
            assert got.shape == resid_pre.shape, "block should return a (T, D) array"
            want = acts[f"blocks.{layer}.resid_post"][0]
            if not jnp.allclose(got, want, atol=1e-5, rtol=1e-5):
                raise AssertionError(
                    f"block differs from the model (n_head={config.n_head}, layer {layer}). "
                    "Did you add both outputs to the stream (resid + ...), normalize before "
                    "each part with its own norm (ln1, ln2), and apply the causal mask?")


@graded(points=1, cases=lambda rng: [(_random_config(rng),) for _ in range(6)],
        hint="list every array in init_params, biases and layer norms included; unembed only "
        "without tie_embeddings",
        borrowed=("minitf.model.count_params", "minitf.model.init_params"),
        forbidden=("eval_shape",))
def check_count_params_formula(module) -> None:
    for config in CONFIGS:
        shapes = jax.eval_shape(lambda c=config: model.init_params(c, jax.random.key(0)))
        want = sum(x.size for x in jax.tree_util.tree_leaves(shapes))
        got = module.count_params_formula(config)
        assert isinstance(got, int), "count_params_formula should return an int"
        if got != want:
            kind = "too many" if got > want else "too few"
            tied = " (this config has tie_embeddings=True)" if config.tie_embeddings else ""
            raise AssertionError(
                f"{kind} parameters for n_layer={config.n_layer}, d_model={config.d_model}, "
                f"d_mlp={config.d_mlp}{tied}: list every array in init_params, biases and "
                "layer norms included")
