"""Checks for lesson 4's exercises: the embedding lookup, cosine similarity, PCA.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Inputs come from seeded numpy generators (drawing them with numpy
compiles nothing, which keeps the checks fast); results are compared with numpy
references at float32 tolerances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minitf.course.hidden import close, graded

TOL = 1e-4


def _matrix(seed: int, shape: tuple[int, int]) -> jax.Array:
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=shape), jnp.float32)  # (N, D)


def _embed_case(rng: np.random.Generator) -> tuple:
    V, D = int(rng.integers(2, 30)), int(rng.integers(1, 17))
    shape = tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(1, 3)))
    return (jnp.asarray(rng.integers(0, V, shape)),
            jnp.asarray(rng.normal(size=(V, D)), jnp.float32))


@graded(points=1, cases=lambda rng: [_embed_case(rng) for _ in range(4)], compare=close(1e-6),
        hint="position t holds row tokens[t] of the matrix, for tokens of any shape")
def check_embed(module) -> None:
    table = _matrix(0, (12, 8))  # (V, D)
    for seed, shape in enumerate([(5,), (3, 4)]):
        tokens = jnp.asarray(np.random.default_rng(seed).integers(0, 12, shape))
        got = jnp.asarray(module.embed(tokens, table))
        want = np.asarray(table)[np.asarray(tokens)]  # (..., D)
        assert got.shape == want.shape, (
            f"embed of tokens with shape {shape} should have shape {shape} + (D,): one "
            "vector per token, in the same layout as the tokens")
        assert np.allclose(got, want, atol=1e-3), (
            "embed returns the wrong vectors: position t should hold row tokens[t] of the "
            "matrix (rows are tokens, columns are dimensions)")
    # the repeated token gets the same vector, and every row can be reached
    every = jnp.arange(12)
    assert np.allclose(jnp.asarray(module.embed(every, table)), table, atol=1e-3), (
        "embedding every id 0..V-1 in order should give back the whole matrix")


def _vectors_case(rng: np.random.Generator) -> tuple:
    N, D = int(rng.integers(2, 12)), int(rng.integers(2, 40))
    scales = rng.uniform(0.1, 10.0, size=(N, 1))  # (N, 1): rows of different lengths
    return (jnp.asarray(rng.normal(size=(N, D)) * scales, jnp.float32),)


@graded(points=1, cases=lambda rng: [_vectors_case(rng) for _ in range(4)], compare=close(1e-4),
        hint="divide each row by its own length (axis=-1), then take every pair's dot product")
def check_cosine_similarity_matrix(module) -> None:
    for seed, (N, D) in enumerate([(6, 16), (12, 64)]):
        vectors = _matrix(10 + seed, (N, D))  # (N, D)
        got = np.asarray(module.cosine_similarity_matrix(vectors))
        assert got.shape == (N, N), f"with {N} vectors of width {D} the result should be (N, N)"
        unit = np.asarray(vectors) / np.linalg.norm(np.asarray(vectors), axis=1, keepdims=True)
        want = unit @ unit.T  # (N, N)
        assert np.allclose(np.diag(got), 1.0, atol=TOL), (
            "every vector should have cosine similarity 1 with itself (the diagonal): "
            "divide each row by its own length")
        assert np.allclose(got, got.T, atol=TOL), (
            "cosine similarity is symmetric: sim(a, b) = sim(b, a)")
        assert np.allclose(got, want, atol=TOL), (
            "wrong similarities: normalize each row (axis=-1, one length per vector), "
            "then take every pair's dot product")
    # lengths don't matter: scaling rows leaves the matrix unchanged
    vectors = _matrix(20, (6, 16))
    scales = jnp.array([0.01, 1.0, 3.0, 100.0, 0.5, 7.0])[:, None]  # (6, 1)
    a = np.asarray(module.cosine_similarity_matrix(vectors))
    b = np.asarray(module.cosine_similarity_matrix(vectors * scales))
    assert np.allclose(a, b, atol=TOL), "making a vector longer should not change its cosines"


def _reference_pca(x: np.ndarray, k: int) -> np.ndarray:
    x = x - x.mean(axis=0, keepdims=True)  # (N, D)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:k].T  # (N, k)


def _pca_case(rng: np.random.Generator) -> tuple:
    N, D = int(rng.integers(8, 30)), int(rng.integers(3, 20))
    k = int(rng.integers(1, min(N, D, 4) + 1))
    x = rng.normal(size=(N, D)) * np.linspace(4.0, 0.2, D)[None] + rng.normal(0, 5, size=D)
    return (jnp.asarray(x, jnp.float32), k)  # unequal spreads: the directions are unique


def _same_up_to_sign(got: object, want: np.ndarray) -> str | None:
    """Like close(), but each column may be flipped (a direction's sign is arbitrary)."""
    if not isinstance(got, np.ndarray) or got.shape != want.shape:
        return close()(got, want)
    signs = np.where(np.sum(got * want, axis=0) >= 0, 1.0, -1.0)  # (k,)
    return close(atol=1e-3 * float(np.abs(want).max()), rtol=1e-3)(got * signs, want)


@graded(points=2, cases=lambda rng: [_pca_case(rng) for _ in range(4)], compare=_same_up_to_sign,
        hint="subtract the mean row, then project the centred rows onto the top "
        "right-singular vectors (rows of V^T), largest singular value first",
        borrowed=("minitf.plots.pca_2d",))
def check_pca_project(module) -> None:
    # rows with clearly different spreads along a few directions, so the order is unique
    for seed, (N, D, k) in enumerate([(10, 64, 2), (30, 5, 3)]):
        x = np.asarray(_matrix(30 + seed, (N, D)), dtype=np.float64)
        x = x * np.linspace(3.0, 0.2, D)[None] + 5.0  # (N, D): unequal spreads, offset mean
        got = np.asarray(module.pca_project(jnp.asarray(x, jnp.float32), k), dtype=np.float64)
        assert got.shape == (N, k), (
            f"pca_project of an ({N}, {D}) matrix with n_components={k} should have shape "
            f"({N}, {k})")
        want = _reference_pca(x, k)
        spread = np.abs(want).max()
        for c in range(k):
            sign = 1.0 if np.dot(got[:, c], want[:, c]) >= 0 else -1.0  # either sign is fine
            if not np.allclose(sign * got[:, c], want[:, c], atol=1e-3 * spread):
                hint = ("subtract the mean row first (PCA is about the spread around the "
                        "average)" if abs(got[:, c].mean()) > 1e-2 * spread else
                        "project the centred rows onto the top right-singular vectors "
                        "(rows of V^T), largest singular value first")
                raise AssertionError(f"component {c} is wrong: {hint}")
