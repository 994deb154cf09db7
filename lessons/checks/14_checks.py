"""Checks for lesson 14's exercises: a new embedding row, masking updates, zero padding.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Compared with `minitf.surgery` (add_tokens, freeze_all_but_rows, widen)
on tiny models with explicit random keys, at a 1e-5 tolerance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minitf import surgery
from minitf.course.hidden import close, equal, graded
from minitf.model import Config, init_params
from minitf.train import make_optimizer

TOL = 1e-5
V, D = 9, 8  # vocabulary and width of the random matrices
CONFIG = Config(vocab_size=V, n_layer=1, n_head=2, d_model=D, d_mlp=16, max_len=6)
TIED = Config(vocab_size=V, n_layer=1, n_head=2, d_model=D, d_mlp=16, max_len=6,
              tie_embeddings=True)  # fmt: skip


def _params(config: Config, seed: int) -> dict:
    """Random params with every entry non-zero (norms and biases included), as numpy."""
    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: rng.normal(0.0, 0.5, x.shape).astype(np.float32), shapes)


def _rows_case(rng: np.random.Generator) -> tuple:
    V, D = int(rng.integers(2, 20)), int(rng.integers(1, 12))
    return (jnp.asarray(rng.normal(size=(V, D)), jnp.float32),
            jnp.asarray(rng.dirichlet(np.ones(V)) if rng.random() < .5 else rng.normal(size=V),
                        jnp.float32))


def _keep_case(rng: np.random.Generator) -> tuple:
    V, D = int(rng.integers(2, 20)), int(rng.integers(1, 12))
    rows = sorted(int(r) for r in rng.choice(V, size=rng.integers(1, V + 1), replace=False))
    return (jnp.asarray(rng.normal(size=(V, D)), jnp.float32), rows)


def _widen_case(rng: np.random.Generator) -> tuple:
    shape = tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(1, 4)))
    new = tuple(n + int(rng.integers(0, 4)) for n in shape)
    return (jnp.asarray(rng.normal(size=shape), jnp.float32), new)


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


@graded(points=1, cases=lambda rng: [_widen_case(rng) for _ in range(4)], compare=equal,
        hint="pad with zeros at the end of every axis, up to new_shape",
        borrowed=("minitf.surgery.widen", "minitf.surgery._pad"))
def check_widen_matrix(module) -> None:
    w = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    got = np.asarray(module.widen_matrix(jnp.asarray(w), (5, 7)))
    assert got.shape == (5, 7), "the result should have exactly new_shape"
    assert np.array_equal(got[:3, :4], w), (
        "the old numbers should sit unchanged in the top-left corner (pad at the end)")
    assert not np.any(got[3:]) and not np.any(got[:, 4:]), "every new entry should be zero"
    unchanged = np.asarray(module.widen_matrix(jnp.asarray(w), (3, 4)))
    assert np.array_equal(unchanged, w), "widening to the same shape should change nothing"
    # the plain-padded matrices of surgery.widen(..., preserve=False)
    params = _params(CONFIG, 2)
    wide, wide_config = surgery.widen(params, CONFIG, 12, preserve=False)
    D2 = wide_config.d_model
    pairs = {
        "embed": (params["embed"], wide["embed"]),
        "pos_embed": (params["pos_embed"], wide["pos_embed"]),
        "mlp w_in": (params["blocks"][0]["mlp"]["w_in"], wide["blocks"][0]["mlp"]["w_in"]),
        "mlp w_out": (params["blocks"][0]["mlp"]["w_out"], wide["blocks"][0]["mlp"]["w_out"]),
        "ln_final bias": (params["ln_final"]["bias"], wide["ln_final"]["bias"]),
    }
    for name, (old, new) in pairs.items():
        got = np.asarray(module.widen_matrix(jnp.asarray(old), new.shape))
        assert got.shape == new.shape and np.allclose(got, new, atol=TOL), (
            f"widening {name} from d_model {CONFIG.d_model} to {D2} differs from zero padding")
