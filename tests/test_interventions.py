"""Interventions: replacing nothing changes nothing, patching everything from the clean
run gives the clean logits, ablations equal the same model with those weights removed,
and the measures mean what they say."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitf import interventions as iv
from minitf.model import Config, activation_names, forward, init_params

TINY = Config(vocab_size=13, n_layer=2, n_head=2, d_model=8, d_mlp=16, max_len=12)
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def params():
    base = jax.jit(init_params, static_argnums=0)(TINY, jax.random.key(0))
    # non-zero biases and norms, so that every term of the model matters
    return jax.tree.map(lambda x: x + 0.1 * RNG.standard_normal(x.shape).astype(np.float32), base)


@pytest.fixture(scope="module")
def clean():
    return jnp.asarray(RNG.integers(0, TINY.vocab_size, (3, 10)))  # (N, T)


@pytest.fixture(scope="module")
def corrupted(clean):
    return clean.at[:, 2].set((clean[:, 2] + 1) % TINY.vocab_size)  # (N, T): one token changed


REPLACEABLE = [n for n in activation_names(TINY) if not n.endswith("attn_pattern")]


def test_replacing_nothing_changes_nothing(params, clean):
    want = iv.run(params, clean, TINY)  # jitted, like every run below
    np.testing.assert_allclose(want, forward(params, clean, TINY), atol=1e-6)
    for name in REPLACEABLE:  # a replacement whose mask is all False
        nothing = iv.Replacement(name, jnp.zeros(()), jnp.zeros((), bool))
        np.testing.assert_array_equal(iv.run(params, clean, TINY, nothing), want)


def test_patching_every_activation_from_the_clean_run_gives_the_clean_logits(
        params, clean, corrupted):
    want, acts = iv.run(params, clean, TINY, cache=True)
    everything = [iv.Replacement(name, acts[name], jnp.ones((), bool)) for name in REPLACEABLE]
    got = jax.jit(lambda p, t: forward(p, t, TINY, hooks=iv.hooks(everything)))(params, corrupted)
    np.testing.assert_array_equal(got, want)
    # one residual stream patched at every position already gives the clean logits
    for layer in range(TINY.n_layer):
        whole = iv.Replacement(f"blocks.{layer}.resid_pre", acts[f"blocks.{layer}.resid_pre"],
                               jnp.ones((), bool))
        np.testing.assert_allclose(iv.run(params, corrupted, TINY, whole), want, atol=1e-5)


def test_patching_one_position_of_the_embeddings(params, clean, corrupted):
    """The only changed token is at position 2: patching it back restores everything;
    patching any other position changes nothing, and no patch reaches back in time."""
    want, acts = forward(params, clean, TINY, cache=True)
    corrupt_logits = forward(params, corrupted, TINY)
    for position in range(clean.shape[1]):
        got = iv.run(params, corrupted, TINY, iv.patch("blocks.0.resid_pre", position, acts))
        if position == 2:
            np.testing.assert_allclose(got, want, atol=1e-5)
        else:
            np.testing.assert_allclose(got, corrupt_logits, atol=1e-5)
    later = iv.run(params, corrupted, TINY, iv.patch("blocks.1.resid_pre", 6, acts))
    np.testing.assert_allclose(later[:, :6], corrupt_logits[:, :6], atol=1e-5)
    assert not np.allclose(later[:, 6], corrupt_logits[:, 6], atol=1e-3)


def test_zero_ablating_a_head_is_removing_its_rows_of_w_out(params, clean):
    K = TINY.d_head
    for layer in range(TINY.n_layer):
        for head in range(TINY.n_head):
            got, acts = iv.run(params, clean, TINY, iv.head_ablation(TINY, layer, head),
                               cache=True)
            assert not np.any(acts[f"blocks.{layer}.attn_z"][:, :, head])
            other = 1 - head
            assert np.any(acts[f"blocks.{layer}.attn_z"][:, :, other])
            w_out = params["blocks"][layer]["attn"]["w_out"]  # (D, D): rows h*K.. are head h
            removed = jax.tree.map(lambda x: x, params)  # a copy of the tree
            removed["blocks"][layer]["attn"]["w_out"] = w_out.at[head * K:(head + 1) * K].set(0)
            np.testing.assert_allclose(got, forward(removed, clean, TINY), atol=1e-5)


def test_zero_ablating_an_mlp_is_removing_its_output_weights(params, clean):
    for layer in range(TINY.n_layer):
        got = iv.run(params, clean, TINY, iv.mlp_ablation(TINY, layer))
        removed = jax.tree.map(lambda x: x, params)
        mlp = removed["blocks"][layer]["mlp"]
        mlp["w_out"], mlp["b_out"] = jnp.zeros_like(mlp["w_out"]), jnp.zeros_like(mlp["b_out"])
        np.testing.assert_allclose(got, forward(removed, clean, TINY), atol=1e-5)


def test_mean_ablation_over_the_input_itself_changes_nothing(params, clean):
    one = clean[:1]  # the mean over a batch of one problem is that problem's activation
    mean = iv.mean_activations(params, one, TINY)
    want = forward(params, one, TINY)
    for replacement in (iv.head_ablation(TINY, 1, 0, mean), iv.mlp_ablation(TINY, 0, mean)):
        np.testing.assert_allclose(iv.run(params, one, TINY, replacement), want, atol=1e-5)
    # over several problems it does change the answer
    mean = iv.mean_activations(params, clean, TINY)
    ablated = iv.run(params, clean, TINY, iv.mlp_ablation(TINY, 0, mean))
    assert not np.allclose(ablated, forward(params, clean, TINY), atol=1e-3)
    assert mean["blocks.0.attn_z"].shape == (clean.shape[1], TINY.n_head, TINY.d_head)


def test_measures():
    # 2 problems, T = 4, V = 3; positions 1 and 2 predict tokens 2 and 3
    tokens = np.array([[0, 1, 2, 0], [0, 0, 1, 1]])
    logits = np.zeros((2, 4, 3), np.float32)
    logits[0, 1] = [0.0, 0.0, 3.0]  # right (token 2), margin 3
    logits[0, 2] = [2.0, 1.0, 0.0]  # right (token 0), margin 1
    logits[1, 1] = [0.0, 1.0, 2.0]  # wrong: token 1 wanted, margin -1
    logits[1, 2] = [0.0, 5.0, 0.0]  # right
    assert iv.forced_exact_match(logits, tokens, [1, 2]) == 0.5
    np.testing.assert_array_equal(iv.logit_margin(logits, tokens, [1, 2]), [[3, 1], [-1, 5]])
    np.testing.assert_array_equal(iv.logit_diff(logits, 1, [2, 1], [0, 2]), [3, -1])
    np.testing.assert_allclose(iv.restored(np.array([1.0, 3.0, 2.0]), 3.0, 1.0), [0, 1, 0.5])


def test_errors(params, clean):
    with pytest.raises(ValueError, match="layers 0..1"):
        iv.head_ablation(TINY, 2, 0)
    with pytest.raises(ValueError, match="heads 0..1"):
        iv.head_ablation(TINY, 0, 5)
    with pytest.raises(ValueError, match="layers 0..1"):
        iv.mlp_ablation(TINY, -1)
    _, acts = forward(params, clean, TINY, cache=True)
    with pytest.raises(ValueError, match="outside the sequence"):
        iv.patch("blocks.0.resid_pre", 10, acts)
    with pytest.raises(ValueError, match="no activation named"):
        iv.run(params, clean, TINY, iv.Replacement("blocks.7.mlp_out", jnp.zeros(()),
                                                   jnp.ones((), bool)))
    twice = [iv.mlp_ablation(TINY, 0), iv.mlp_ablation(TINY, 0)]
    with pytest.raises(ValueError, match="same activation"):
        iv.hooks(twice)
