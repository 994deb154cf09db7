"""Checks for lesson 11's exercises: attention mass per column, one component's logit.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Column attention is compared with plain loops over random patterns;
a component's direct logit with a float64 numpy formula on random vectors, and on a small
random model with `minitf.attribution.direct_logit_attribution` (whose pieces must add
up to the model's logit). Seeded generators and keys throughout; tolerance 1e-4.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minitf import model
from minitf.attribution import direct_logit_attribution
from minitf.course.hidden import close, graded

TOL = 1e-4


def _patterns(seed: int, N: int, H: int, T: int) -> np.ndarray:
    """Random attention patterns: every row a distribution over the keys. -> (N, H, T, T)"""
    return np.random.default_rng(seed).dirichlet(np.ones(T), size=(N, H, T)).astype(np.float32)


def _columns_case(rng: np.random.Generator) -> tuple:
    N, H, T = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(3, 12))
    patterns = _patterns(int(rng.integers(1 << 30)), N, H, T)
    queries = np.sort(rng.choice(T, size=rng.integers(1, T + 1), replace=False))
    columns = [tuple(int(s) for s in np.sort(rng.choice(T, size=rng.integers(1, T + 1),
                                                        replace=False)))
               for _ in range(int(rng.integers(1, 4)))]
    return (jnp.asarray(patterns), queries, columns)


@graded(points=2, cases=lambda rng: [_columns_case(rng) for _ in range(4)], compare=close(1e-5),
        hint="take the rows of the query positions (axis 2), add up each column's key "
        "positions (axis 3), then average over the problems (axis 0)")
def check_column_attention(module) -> None:
    cases = [  # (seed, N, H, T, query positions, columns)
        (0, 5, 3, 9, [4, 6, 8], [(0, 3), (1,), (2, 5, 7)]),
        (1, 2, 1, 12, [7, 8, 9, 10], [(0, 4), (1, 5), (2, 6)]),
    ]
    for seed, N, H, T, queries, columns in cases:
        patterns = _patterns(seed, N, H, T)
        got = np.asarray(module.column_attention(jnp.asarray(patterns), np.array(queries),
                                                 columns))
        A, C = len(queries), len(columns)
        assert got.shape == (H, A, C), (
            f"with {H} heads, {A} query positions and {C} columns the result should have "
            "shape (H, A, C)")
        want = np.zeros((H, A, C))
        for h in range(H):
            for a, q in enumerate(queries):
                for c, column in enumerate(columns):
                    want[h, a, c] = np.mean([patterns[n, h, q, list(column)].sum()
                                             for n in range(N)])
        if not np.allclose(got, want, atol=TOL):
            if np.allclose(got, want * N, atol=TOL):
                raise AssertionError("average over the problems (axis 0) rather than summing")
            raise AssertionError(
                "wrong masses: take the rows of the query positions (axis 2 of the patterns), "
                "add up the entries of each column's key positions (axis 3), then average "
                "over the problems")


def _readout_params(seed: int, V: int, D: int, tied: bool) -> dict:
    rng = np.random.default_rng(seed)
    params = {"embed": rng.normal(size=(V, D)).astype(np.float32),
              "ln_final": {"scale": (1 + 0.5 * rng.normal(size=D)).astype(np.float32),
                           "bias": (0.5 * rng.normal(size=D)).astype(np.float32)}}
    if not tied:
        params["unembed"] = rng.normal(size=(V, D)).astype(np.float32)
    return params


def _check_formula(module) -> None:
    """On random vectors: the frozen-norm readout of one component, in float64 numpy."""
    for seed, tied in enumerate([False, True]):
        V, D = 7, 16
        config = model.Config(vocab_size=V, n_layer=1, n_head=2, d_model=D, d_mlp=32,
                              max_len=4, tie_embeddings=tied)
        params = _readout_params(seed, V, D, tied)
        rng = np.random.default_rng(50 + seed)
        component = rng.normal(1.0, 2.0, size=D).astype(np.float32)  # (D,): non-zero mean
        final = rng.normal(0.5, 3.0, size=D).astype(np.float32)  # (D,)
        w_u = params["embed"] if tied else params["unembed"]  # (V, D)
        for token_id in (0, 3, V - 1):
            got = float(module.component_logit(jnp.asarray(component), jnp.asarray(final),
                                               params, config, token_id))
            c = component.astype(np.float64)
            std = np.sqrt(final.astype(np.float64).var() + model.LN_EPS)
            want = ((c - c.mean()) / std * params["ln_final"]["scale"]) @ w_u[token_id]
            if abs(got - want) > TOL * max(1.0, abs(want)):
                own_std = np.sqrt(c.var() + model.LN_EPS)
                if abs(got - want * std / own_std) < TOL * max(1.0, abs(want)):
                    raise AssertionError(
                        "divide by the standard deviation of the final residual, not of the "
                        "component: the norm sees the whole residual")
                tie = " (this model has tie_embeddings=True)" if tied else ""
                raise AssertionError(
                    f"wrong value{tie}: center the component, divide by the final residual's "
                    "sqrt(var + LN_EPS), multiply by the norm's scale (not its bias), and dot "
                    "with the token's row of model.unembed_matrix")


CONFIG = model.Config(vocab_size=9, n_layer=2, n_head=2, d_model=16, d_mlp=32, max_len=6)
TOKENS = (3, 1, 4, 1, 5, 8)  # one sequence for the small model
POSITION, TOKEN_ID = 4, 2  # the logit of token 2 after position 4


def _model_parts(seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """A random model, the components of its final residual at POSITION, and that residual.

    The weights are numpy draws in init_params's shapes (jax.eval_shape only traces it), and
    forward runs compiled once: run eagerly, every small operation would compile on its own.
    -> params, parts (C-1, D) in minitf.attribution's order, final (D,)
    """
    shapes = jax.eval_shape(lambda: model.init_params(CONFIG, jax.random.key(0)))
    rng = np.random.default_rng(seed)
    params = jax.tree.map(  # non-zero biases and norm offsets, so every term matters
        lambda x: (0.2 + 0.3 * rng.normal(size=x.shape)).astype(np.float32), shapes)
    tokens, t = np.array(TOKENS), POSITION
    _, acts = jax.jit(model.forward, static_argnames=("config", "cache"))(
        params, tokens[None], CONFIG, cache=True)
    parts = [params["embed"][tokens[t]], params["pos_embed"][t]]
    for l, block in enumerate(params["blocks"]):
        z = np.asarray(acts[f"blocks.{l}.attn_z"][0, t])  # (H, K)
        w_out = block["attn"]["w_out"].reshape(CONFIG.n_head, -1, CONFIG.d_model)  # (H, K, D)
        parts += list(np.einsum("hk,hkd->hd", z, w_out))  # one (D,) per head
        parts += [block["attn"]["b_out"], np.asarray(acts[f"blocks.{l}.mlp_out"][0, t])]
    final = np.asarray(acts[f"blocks.{CONFIG.n_layer - 1}.resid_post"][0, t])  # (D,)
    return params, np.stack(parts), final


def _component_case(rng: np.random.Generator) -> tuple:
    V, D, tied = int(rng.integers(3, 15)), int(rng.integers(2, 20)), bool(rng.random() < 0.5)
    config = model.Config(vocab_size=V, n_layer=1, n_head=1, d_model=D, d_mlp=2 * D,
                          max_len=4, tie_embeddings=tied)
    params = _readout_params(int(rng.integers(1 << 30)), V, D, tied)
    component = rng.normal(rng.normal(0, 1), rng.uniform(0.5, 3), D).astype(np.float32)
    final = rng.normal(rng.normal(0, 1), rng.uniform(0.5, 3), D).astype(np.float32)
    return (jnp.asarray(component), jnp.asarray(final), params, config, int(rng.integers(V)))


@graded(points=2, cases=lambda rng: [_component_case(rng) for _ in range(5)],
        compare=close(atol=1e-4, rtol=1e-4),
        hint="center the component, divide by the final residual's sqrt(var + LN_EPS), "
        "multiply by the norm's scale (not its bias), and dot with the token's row of "
        "model.unembed_matrix", borrowed=("minitf.attribution.direct_logit_attribution",))
def check_component_logit(module) -> None:
    _check_formula(module)
    params, parts, final = _model_parts(0)
    reference = direct_logit_attribution(params, CONFIG, jnp.array(TOKENS), TOKEN_ID, POSITION)
    got = np.array([float(module.component_logit(jnp.asarray(part), jnp.asarray(final), params,
                                                 CONFIG, TOKEN_ID)) for part in parts])  # (C-1,)
    assert np.allclose(got, reference.values[:-1], atol=TOL), (
        "on a model, your pieces differ from minitf.attribution's: is the standard deviation "
        "taken over the final residual at the same position?")
