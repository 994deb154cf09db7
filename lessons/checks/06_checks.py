"""Checks for lesson 6's exercises: one transformer block, and the parameter count formula.

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
        borrowed=("minitf.model.block", "minitf.model.forward"))
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
