"""Checks for lesson 14's exercises: a new embedding row, masking updates, widening a
residual stream and its layer norm without changing the norm's output.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Compared with `minitf.surgery` (add_tokens, freeze_all_but_rows) on
tiny models with explicit random keys, at a 1e-5 tolerance, and with `minitf.model.layer_norm`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from minitf import surgery
from minitf.course.hidden import close, equal, graded
from minitf.model import Config
from minitf.train import make_optimizer

TOL = 1e-5
V, D = 9, 8  # vocabulary and width of the random matrices
CONFIG = Config(vocab_size=V, n_layer=1, n_head=2, d_model=D, d_mlp=16, max_len=6)
TIED = Config(vocab_size=V, n_layer=1, n_head=2, d_model=D, d_mlp=16, max_len=6,
              tie_embeddings=True)  # fmt: skip


def _rows_case(rng: np.random.Generator) -> tuple:
    V, D = int(rng.integers(2, 20)), int(rng.integers(1, 12))
    return (jnp.asarray(rng.normal(size=(V, D)), jnp.float32),
            jnp.asarray(rng.dirichlet(np.ones(V)) if rng.random() < .5 else rng.normal(size=V),
                        jnp.float32))


def _keep_case(rng: np.random.Generator) -> tuple:
    V, D = int(rng.integers(2, 20)), int(rng.integers(1, 12))
    rows = sorted(int(r) for r in rng.choice(V, size=rng.integers(1, V + 1), replace=False))
    return (jnp.asarray(rng.normal(size=(V, D)), jnp.float32), rows)


@graded(points=1, cases=lambda rng: [_rows_case(rng) for _ in range(4)], compare=close(1e-5),
        hint="keep the old rows as they are and append sum_i weights[i] * embed[i] as the "
        "last row", borrowed=("minitf.surgery.add_tokens",))
def check_add_embedding_row(module) -> None:
    embed = np.random.default_rng(0).normal(size=(V, D)).astype(np.float32)  # (V, D)
    cases = {
        "the mean of all rows": np.full(V, 1 / V, np.float32),
        "0.5 * row 2 + 0.5 * row 5": 0.5 * (np.eye(V)[2] + np.eye(V)[5]).astype(np.float32),
        "random weights": np.random.default_rng(1).normal(size=V).astype(np.float32),
    }
    for what, weights in cases.items():
        got = np.asarray(module.add_embedding_row(jnp.asarray(embed), jnp.asarray(weights)))
        assert got.shape == (V + 1, D), (
            "the result should have one more row than embed: shape (V + 1, D)")
        assert np.array_equal(got[:V], embed), (
            "the old rows must stay exactly as they were, in the same order, new row last")
        init = {i: float(w) for i, w in enumerate(weights)}
        want, _, _ = surgery.add_tokens({"embed": embed}, TIED, None, ["NEW"], init)
        assert np.allclose(got[V], want["embed"][V], atol=TOL), (
            f"the new row is wrong for {what}: it should be sum_i weights[i] * embed[i] "
            "(a (V,) vector times a (V, D) matrix)")


@graded(points=1, cases=lambda rng: [_keep_case(rng) for _ in range(4)], compare=equal,
        hint="the listed rows pass through unchanged, every other row becomes zero",
        borrowed=("minitf.surgery.freeze_all_but_rows", "minitf.surgery._keep_rows"))
def check_keep_only_rows(module) -> None:
    rng = np.random.default_rng(1)
    params = {"embed": rng.normal(size=(V, D)), "other": rng.normal(size=(3,))}
    for rows in ([8], [0, 3], [2, 4, 7]):
        update = rng.normal(size=(V, D)).astype(np.float32)  # (V, D)
        got = np.asarray(module.keep_only_rows(jnp.asarray(update), rows))
        assert got.shape == (V, D), "keep_only_rows should return an array of the same shape"
        kept = np.zeros(V, bool)
        kept[rows] = True
        assert np.array_equal(got[kept], update[kept]), f"rows {rows} should pass through unchanged"
        assert not np.any(got[~kept]), f"every row other than {rows} should be zero"
    # the same rows move as in surgery.finetune's optimizer with only_rows
    settings = surgery.finetune_settings(steps=1, lr=0.1)
    optimizer = surgery.freeze_all_but_rows(make_optimizer(settings), params, CONFIG, rows)
    grads = {"embed": update, "other": np.ones(3, np.float32)}
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    moved = np.any(np.asarray(updates["embed"]) != 0, axis=1)  # (V,)
    assert np.array_equal(moved, np.any(got != 0, axis=1)), (
        "the rows you keep differ from the rows surgery.finetune lets train")


def _widen_case(rng: np.random.Generator) -> tuple:
    shape = tuple(int(n) for n in rng.integers(1, 6, size=int(rng.integers(0, 3))))
    D = int(rng.integers(1, 12))
    return (jnp.asarray(rng.normal(0.5, 2.0, (*shape, D)), jnp.float32),
            jnp.asarray(1 + 0.3 * rng.normal(size=D), jnp.float32),
            jnp.asarray(0.3 * rng.normal(size=D), jnp.float32), D + int(rng.integers(0, 20)))


def _same_norm_output(got, want) -> str | None:
    """Right in more than one way: any (x', scale', bias') whose layer norm gives the
    reference's output (shapes exact, values within 1e-3)."""
    from minitf.model import layer_norm

    if not isinstance(got, tuple | list) or len(got) != 3:
        return "is not a tuple (x', scale', bias')"
    shapes = [np.shape(a) for a in got]
    if shapes != [np.shape(a) for a in want]:
        return f"has shapes {shapes} where {[np.shape(a) for a in want]} are expected"

    def normed(x, scale, bias):
        return np.asarray(layer_norm(jnp.asarray(x, jnp.float32), {
            "scale": jnp.asarray(scale, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}))

    if not np.allclose(normed(*got), normed(*want), atol=1e-3, rtol=1e-3):
        return "gives a layer-norm output that differs from the original's"
    return None


@graded(points=2, cases=lambda rng: [_widen_case(rng) for _ in range(4)],
        compare=_same_norm_output,
        hint="centre each vector (subtract its mean), pad it with zeros to new_d, shrink the "
        "old gains by sqrt(D / new_d) and give the new dimensions gain 1 and bias 0")
def check_widen_for_layer_norm(module) -> None:
    from minitf.model import layer_norm

    rng = np.random.default_rng(3)
    for shape, new_d in [((5, 8), 12), ((2, 3, 16), 40), ((4, 6), 6)]:
        D = shape[-1]
        x = (rng.normal(0.5, 2.0, shape)).astype(np.float32)  # off-centre, like a real stream
        scale = (1 + 0.3 * rng.normal(size=D)).astype(np.float32)
        bias = (0.3 * rng.normal(size=D)).astype(np.float32)
        got = module.widen_for_layer_norm(jnp.asarray(x), jnp.asarray(scale), jnp.asarray(bias),
                                          new_d)  # fmt: skip
        assert isinstance(got, tuple) and len(got) == 3, "return a tuple (x', scale', bias')"
        wide_x, wide_scale, wide_bias = (np.asarray(a) for a in got)
        assert wide_x.shape == (*shape[:-1], new_d), (
            f"x' should have the shape of x with the last axis widened to {new_d}")
        assert wide_scale.shape == wide_bias.shape == (new_d,), "scale' and bias' are (D',)"
        old = np.asarray(layer_norm(jnp.asarray(x), {"scale": scale, "bias": bias}))
        new = np.asarray(layer_norm(jnp.asarray(wide_x), {"scale": wide_scale,
                                                          "bias": wide_bias}))  # fmt: skip
        assert np.allclose(new[..., D:], 0.0, atol=1e-4), (
            "the norm's output should be 0 in the new dimensions: give them gain 1 and bias 0, "
            "and make each new entry of x' equal to its vector's mean")
        if not np.allclose(new[..., :D], old, atol=1e-3, rtol=1e-3):
            padded = np.concatenate([x, np.zeros((*shape[:-1], new_d - D), np.float32)], -1)
            if np.allclose(wide_x, padded, atol=1e-6) and new_d > D:
                raise AssertionError("zeros appended to an off-centre vector change its mean: "
                                     "centre each vector (subtract its mean) before padding")
            raise AssertionError(
                "the norm's output changed in the old dimensions: with mean 0, the D' - D "
                "new zeros divide the variance by D'/D, so shrink the old gains by sqrt(D/D')")
