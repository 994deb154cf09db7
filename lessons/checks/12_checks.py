"""Checks for lesson 12's exercises: zero-ablating a head, mean-ablating a head, patching
one position.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Compared on random arrays from seeded generators, and as hooks in a
small random model against `minitf.interventions` (tolerance 1e-5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minitf import interventions as iv
from minitf import model
from minitf.course.hidden import close, graded

TOL = 1e-5
CONFIG = model.Config(vocab_size=11, n_layer=2, n_head=3, d_model=12, d_mlp=24, max_len=8)


def _z(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _model_and_tokens(seed: int):
    params = jax.jit(model.init_params, static_argnums=0)(CONFIG, jax.random.key(seed))
    tokens = np.random.default_rng(seed).integers(0, CONFIG.vocab_size, (4, CONFIG.max_len))
    return params, jnp.asarray(tokens)


# minitf's own replacements: a Replacement's hook, and the function behind it
REPLACING = ("minitf.interventions.Replacement.hook", "minitf.interventions._replace")


def _f32(shape: tuple[int, ...], rng: np.random.Generator) -> jax.Array:
    return jnp.asarray(rng.normal(size=shape), jnp.float32)


def _head_shape(rng: np.random.Generator, leading: int) -> tuple[int, ...]:
    """(leading problem axes..., T, H, K)."""
    return tuple(int(n) for n in rng.integers(1, 6, size=leading + 3))


def _zero_head_case(rng: np.random.Generator) -> tuple:
    shape = _head_shape(rng, int(rng.integers(0, 3)))
    return (_f32(shape, rng), int(rng.integers(shape[-2])))


def _mean_head_case(rng: np.random.Generator) -> tuple:
    N, T, H, K = _head_shape(rng, 1)
    M = int(rng.integers(1, 8))
    return (_f32((N, T, H, K), rng), _f32((M, T, H, K), rng), int(rng.integers(H)))


def _patch_case(rng: np.random.Generator) -> tuple:
    shape = tuple(int(n) for n in rng.integers(1, 7, size=int(rng.integers(2, 5))))  # (N, T, ...)
    return (_f32(shape, rng), _f32(shape, rng), int(rng.integers(shape[1])))


@graded(points=1, cases=lambda rng: [_zero_head_case(rng) for _ in range(5)],
        hint="the head axis is the second to last: set z[..., head, :] to 0 in a copy, at "
        "every position and problem, and keep every other head",
        borrowed=("minitf.interventions.head_ablation", *REPLACING))
def check_zero_head(module) -> None:
    for seed, shape in enumerate([(2, 5, 3, 4), (1, 7, 4, 2), (5, 3, 2)]):
        z = _z(seed, shape)
        before = z.copy()
        for head in range(shape[-2]):
            got = np.asarray(module.zero_head(jnp.asarray(z), head))
            assert np.array_equal(z, before), "zero_head must not change the array it is given"
            assert got.shape == z.shape, "zero_head should return an array of z's shape"
            assert not np.any(got[..., head, :]), (
                f"head {head}'s entries should all be 0, at every position and problem "
                "(the head axis is the second to last)")
            others = np.delete(np.arange(shape[-2]), head)
            assert np.array_equal(got[..., others, :], z[..., others, :]), (
                "the other heads should keep their values")
    # as a hook in a model: the same logits as minitf.interventions.head_ablation
    params, tokens = _model_and_tokens(0)
    for layer, head in [(0, 1), (1, 2)]:
        hook = {f"blocks.{layer}.attn_z": lambda z, h=head: module.zero_head(z, h)}
        got = model.forward(params, tokens, CONFIG, hooks=hook)
        want = iv.run(params, tokens, CONFIG, iv.head_ablation(CONFIG, layer, head))
        assert jnp.allclose(got, want, atol=TOL), "as a hook, zero_head changes the wrong part"


@graded(points=2, cases=lambda rng: [_mean_head_case(rng) for _ in range(5)],
        compare=close(atol=1e-5, rtol=1e-5),
        hint="average reference[:, t, head] over the reference problems (axis 0) separately "
        "at each position t, and put that (T, K) mean into every problem of z",
        borrowed=("minitf.interventions.head_ablation", "minitf.interventions.mean_activations",
                  *REPLACING))
def check_mean_head(module) -> None:
    for seed, (N, M, T, H, K) in enumerate([(2, 6, 5, 3, 4), (3, 1, 4, 2, 2)]):
        z, reference = _z(seed, (N, T, H, K)), _z(100 + seed, (M, T, H, K))
        for head in range(H):
            got = np.asarray(module.mean_head(jnp.asarray(z), jnp.asarray(reference), head))
            assert got.shape == z.shape, "mean_head should return an array of z's shape"
            others = np.delete(np.arange(H), head)
            assert np.array_equal(got[:, :, others], z[:, :, others]), (
                "the other heads should keep their values")
            want = np.broadcast_to(reference[:, :, head].mean(axis=0), (N, T, K))
            if np.allclose(got[:, :, head], reference[:, :, head].mean(axis=(0, 1)), atol=TOL):
                raise AssertionError("average over the reference problems only, separately at "
                                     "each position: the mean differs from position to position")
            assert np.allclose(got[:, :, head], want, atol=TOL), (
                f"head {head} should be replaced at each position t by the mean of "
                "reference[:, t, head] over the reference problems (axis 0), the same for "
                "every problem of z")
    # as a hook: the same logits as head_ablation with mean_activations
    params, tokens = _model_and_tokens(1)
    reference_tokens = jnp.asarray(np.random.default_rng(9).integers(0, CONFIG.vocab_size,
                                                                     (6, CONFIG.max_len)))
    mean = iv.mean_activations(params, reference_tokens, CONFIG)
    _, acts = iv.run(params, reference_tokens, CONFIG, cache=True)
    ref_z = acts["blocks.1.attn_z"]
    got = model.forward(params, tokens, CONFIG,
                        hooks={"blocks.1.attn_z": lambda z: module.mean_head(z, ref_z, 0)})
    want = iv.run(params, tokens, CONFIG, iv.head_ablation(CONFIG, 1, 0, mean))
    assert jnp.allclose(got, want, atol=TOL), "as a hook, mean_head changes the wrong part"


@graded(points=1, cases=lambda rng: [_patch_case(rng) for _ in range(5)],
        hint="positions are axis 1 (axis 0 is the problem): in a copy of corrupted, put "
        "clean[:, position] at position `position` for every problem",
        borrowed=("minitf.interventions.patch", *REPLACING))
def check_patch_position(module) -> None:
    for seed, shape in enumerate([(3, 6, 4), (2, 5, 3, 2)]):
        corrupted, clean = _z(seed, shape), _z(50 + seed, shape)
        before = corrupted.copy()
        for position in range(shape[1]):
            got = np.asarray(module.patch_position(jnp.asarray(corrupted), jnp.asarray(clean),
                                                   position))
            assert np.array_equal(corrupted, before), (
                "patch_position must not change the arrays it is given")
            assert got.shape == corrupted.shape, "return an array of the activation's shape"
            assert np.array_equal(got[:, position], clean[:, position]), (
                f"position {position} (axis 1) should hold the clean values, for every problem")
            rest = np.delete(np.arange(shape[1]), position)
            assert np.array_equal(got[:, rest], corrupted[:, rest]), (
                "every other position should keep the corrupted values")
    # as a hook: the same logits as minitf.interventions.patch
    params, clean_tokens = _model_and_tokens(2)
    corrupted_tokens = clean_tokens.at[:, 1].set((clean_tokens[:, 1] + 1) % CONFIG.vocab_size)
    _, clean_acts = iv.run(params, clean_tokens, CONFIG, cache=True)
    name = "blocks.1.resid_pre"
    hook = {name: lambda x: module.patch_position(x, clean_acts[name], 1)}
    got = model.forward(params, corrupted_tokens, CONFIG, hooks=hook)
    want = iv.run(params, corrupted_tokens, CONFIG, iv.patch(name, 1, clean_acts))
    assert jnp.allclose(got, want, atol=TOL), "as a hook, patch_position changes the wrong part"
