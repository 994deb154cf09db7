"""Invariants of the model: causality, attention, gradients, initial loss, batching, names.

Tiny configs so the whole file runs in seconds. Tests that take the `run` fixture run
both eagerly and under `jax.jit`, which compiles and fuses, and must not change answers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from minitf.model import (
    Config,
    activation_names,
    attend,
    block,
    causal_mask,
    count_params,
    forward,
    init_params,
    layer_norm,
    logits_from_resid,
    unembed_matrix,
)

TINY = Config(vocab_size=13, n_layer=2, n_head=2, d_model=8, d_mlp=16, max_len=12)
# test data comes from numpy: jax.random would compile a kernel for every new shape
RNG = np.random.default_rng(0)


_init_jit = jax.jit(init_params, static_argnums=0)  # one compilation instead of many eager ops
_forward_jit = jax.jit(forward, static_argnames=("config", "cache"))


@pytest.fixture(scope="module")
def params():
    return _init_jit(TINY, jax.random.key(0))


@pytest.fixture(scope="module")
def tokens():
    return jnp.asarray(RNG.integers(0, TINY.vocab_size, (3, 10)))  # (B, T)


@pytest.fixture(params=["eager", "jit"])
def run(request):
    """`forward` as it is, or under `jax.jit`: both must agree with every invariant."""
    return forward if request.param == "eager" else _forward_jit


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean next-token loss. [B, T, V] logits, [B, T] targets -> scalar"""
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # (B, T, V)
    return -jnp.take_along_axis(log_probs, targets[..., None], axis=-1).mean()


# --- causality ---------------------------------------------------------------------------


def test_causal_by_gradient(params, tokens):
    """d logits[t] / d (input embedding at s) is exactly zero for every s > t.

    The position embedding row s is added only to the input at position s, so
    differentiating with respect to it is differentiating with respect to that input.
    """
    seq = tokens[:1]  # (1, T)
    T = seq.shape[1]
    probe = jnp.asarray(RNG.normal(size=TINY.vocab_size), jnp.float32)  # (V,): a random readout

    for t in (0, 4, T - 1):

        def logit_at_t(pos_embed, t=t):  # (max_len, D) -> scalar
            return _forward_jit({**params, "pos_embed": pos_embed}, seq, TINY)[0, t] @ probe

        grad = jax.grad(logit_at_t)(params["pos_embed"])  # (max_len, D): one row per input s
        influence = np.abs(np.asarray(grad)).sum(axis=-1)  # (max_len,)
        assert (influence[t + 1 :] == 0).all()  # exactly zero, not merely small
        assert (influence[: t + 1] > 0).all()  # and every earlier position does flow in


@pytest.mark.parametrize("t", [0, 4, 9])
def test_future_tokens_never_change_earlier_logits(params, tokens, run, t):
    before = run(params, tokens, TINY)  # (B, T, V)
    changed = tokens.at[:, t:].set((tokens[:, t:] + 1) % TINY.vocab_size)  # (B, T)
    after = run(params, changed, TINY)  # (B, T, V)
    np.testing.assert_allclose(after[:, :t], before[:, :t], atol=1e-6)
    assert not np.allclose(after[:, t:], before[:, t:])  # the changed positions did change


# --- attention ---------------------------------------------------------------------------


def test_attention_rows_sum_to_one_and_never_look_ahead(params, tokens, run):
    _, acts = run(params, tokens, TINY, cache=True)
    T = tokens.shape[1]
    future = np.triu(np.ones((T, T), dtype=bool), k=1)  # (T, S): key after query
    for layer in range(TINY.n_layer):
        pattern = np.asarray(acts[f"blocks.{layer}.attn_pattern"])  # (B, H, T, T)
        np.testing.assert_allclose(pattern.sum(axis=-1), 1.0, atol=1e-6)
        assert (pattern[..., future] == 0).all()  # exactly zero, not merely small
        assert (pattern[..., ~future] > 0).all()


def naive_attention(x: np.ndarray, attn: dict, norm: dict, n_head: int):
    """The textbook loop: one head, one query, one key at a time. [T, D] residual in ->
    pattern [H, T, T] and output [T, D]; float64 numpy, independent of model.py."""
    T, D = x.shape
    K = D // n_head
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    h = (x - mean) / np.sqrt(var + 1e-5) * norm["scale"] + norm["bias"]  # (T, D)
    qkv = h @ attn["w_qkv"] + attn["b_qkv"]  # (T, 3D)
    pattern = np.zeros((n_head, T, T))
    z = np.zeros((T, D))
    for head in range(n_head):
        cols = slice(head * K, (head + 1) * K)
        q = qkv[:, :D][:, cols]  # (T, K)
        k = qkv[:, D : 2 * D][:, cols]  # (T, K)
        v = qkv[:, 2 * D :][:, cols]  # (T, K)
        for t in range(T):
            scores = [float(q[t] @ k[s]) / math.sqrt(K) for s in range(t + 1)]  # keys 0..t
            weights = np.exp(np.array(scores) - max(scores))
            weights /= weights.sum()
            pattern[head, t, : t + 1] = weights
            for s in range(t + 1):
                z[t, cols] += weights[s] * v[s]
    return pattern, z @ attn["w_out"] + attn["b_out"]  # (H, T, T), (T, D)


def as_float64(tree):
    """A pytree of jax arrays as float64 numpy arrays."""
    return jax.tree.map(lambda a: np.asarray(a, dtype=np.float64), tree)


def test_attention_matches_naive_loop(params, tokens, run):
    _, acts = run(params, tokens, TINY, cache=True)
    for layer, block_params in enumerate(as_float64(params["blocks"])):
        x = as_float64(acts[f"blocks.{layer}.resid_pre"][0])  # (T, D), first sequence
        pattern, out = naive_attention(x, block_params["attn"], block_params["ln1"], TINY.n_head)
        np.testing.assert_allclose(acts[f"blocks.{layer}.attn_pattern"][0], pattern, atol=1e-5)
        np.testing.assert_allclose(acts[f"blocks.{layer}.attn_out"][0], out, atol=1e-5)


def test_attend_with_a_custom_mask_ignores_hidden_keys():
    """`attend` is general: hidden keys get weight exactly 0 whatever their values."""
    q, k, v = jnp.asarray(RNG.normal(size=(3, 4, 2, 3)), jnp.float32)  # 3 x (T=4, H=2, K=3)
    mask = causal_mask(4)  # (T, S)
    z, pattern = attend(q, k, v, mask)  # (T, H, K), (H, T, S)
    k2 = k.at[3].set(100.0)  # only the last query may see key 3
    z2, _ = attend(q, k2, v.at[3].set(-7.0), mask)  # (T, H, K)
    np.testing.assert_array_equal(z2[:3], z[:3])
    assert pattern.shape == (2, 4, 4)


# --- gradients and loss ------------------------------------------------------------------


def test_gradients_match_finite_differences(params, tokens):
    """Reverse-mode gradients of the loss agree with central differences, in float64."""
    config = Config(**{**TINY.to_dict(), "n_layer": 1})  # one block is enough, and quicker
    with jax.enable_x64(True):
        # float64 copies, with weights larger than at init so the loss surface isn't flat
        params64 = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64) * (10 if a.ndim == 2 else 1),
            {**params, "blocks": params["blocks"][:1]},
        )

        def loss(params):
            params = jax.tree.map(jnp.asarray, params)  # finite differences pass numpy arrays
            return cross_entropy(forward(params, tokens[:, :-1], config), tokens[:, 1:])

        check_grads(jax.jit(loss), (params64,), order=1, modes=("rev",), eps=1e-6, atol=1e-6)


def test_initial_loss_is_close_to_log_vocab(params, tokens):
    loss = cross_entropy(_forward_jit(params, tokens, TINY)[:, :-1], tokens[:, 1:])
    # small random weights give near-uniform predictions: the loss of guessing
    assert abs(float(loss) - math.log(TINY.vocab_size)) < 0.1


# --- batching ----------------------------------------------------------------------------


def test_batch_of_one_equals_batch_of_eight(params):
    batch = jnp.asarray(RNG.integers(0, TINY.vocab_size, (8, 10)))  # (B, T)
    together = _forward_jit(params, batch, TINY)  # (8, T, V)
    for b in range(8):
        alone = _forward_jit(params, batch[b : b + 1], TINY)  # (1, T, V)
        np.testing.assert_allclose(alone[0], together[b], atol=1e-6)


# --- the activation cache and the unembedding ------------------------------------------


def test_cache_has_every_named_activation_with_its_shape(params, tokens):
    logits, acts = forward(params, tokens, TINY, cache=True)
    B, T = tokens.shape
    D, H, K = TINY.d_model, TINY.n_head, TINY.d_head
    expected = {"ln_final.out": (B, T, D)}
    for layer in range(TINY.n_layer):
        name = f"blocks.{layer}"
        expected |= {
            f"{name}.resid_pre": (B, T, D),
            f"{name}.attn_pattern": (B, H, T, T),
            f"{name}.attn_z": (B, T, H, K),
            f"{name}.attn_out": (B, T, D),
            f"{name}.resid_mid": (B, T, D),
            f"{name}.mlp_out": (B, T, D),
            f"{name}.resid_post": (B, T, D),
        }
    assert {key: acts[key].shape for key in expected} == expected
    assert logits.shape == (B, T, TINY.vocab_size)
    # the stream adds up: each block's input is the previous block's output
    np.testing.assert_array_equal(acts["blocks.1.resid_pre"], acts["blocks.0.resid_post"])
    np.testing.assert_allclose(
        acts["blocks.0.resid_mid"], acts["blocks.0.resid_pre"] + acts["blocks.0.attn_out"]
    )


def test_logits_from_last_residual_are_the_logits(params, tokens, run):
    logits, acts = run(params, tokens, TINY, cache=True)
    last = acts[f"blocks.{TINY.n_layer - 1}.resid_post"]  # (B, T, D)
    np.testing.assert_allclose(logits_from_resid(params, TINY, last), logits, atol=1e-6)
    normed = layer_norm(last, params["ln_final"])  # (B, T, D)
    np.testing.assert_allclose(acts["ln_final.out"], normed, atol=1e-6)


def test_tied_embeddings_unembed_with_the_embedding(params):
    config = Config(**{**TINY.to_dict(), "tie_embeddings": True})
    tied = {name: value for name, value in params.items() if name != "unembed"}
    assert "unembed" not in jax.eval_shape(lambda key: init_params(config, key), jax.random.key(8))
    assert unembed_matrix(tied, config) is tied["embed"]
    resid = jnp.asarray(RNG.normal(size=(4, TINY.d_model)), jnp.float32)  # (T, D)
    expected = layer_norm(resid, tied["ln_final"]) @ tied["embed"].T  # (T, V)
    np.testing.assert_allclose(logits_from_resid(tied, config, resid), expected, atol=1e-6)


@pytest.mark.parametrize("tie", [False, True])
def test_parameter_count_formula(tie):
    config = Config(**{**TINY.to_dict(), "tie_embeddings": tie})
    V, D, M, L, N = config.vocab_size, config.d_model, config.d_mlp, config.n_layer, config.max_len
    per_block = sum(
        [
            2 * D,  # ln1 scale and bias
            D * 3 * D + 3 * D,  # w_qkv, b_qkv
            D * D + D,  # w_out, b_out
            2 * D,  # ln2
            D * M + M + M * D + D,  # mlp w_in, b_in, w_out, b_out
        ]
    )
    expected = V * D + N * D + L * per_block + 2 * D + (0 if tie else V * D)
    # eval_shape builds the parameter shapes without computing any random numbers
    shapes = jax.eval_shape(lambda key: init_params(config, key), jax.random.key(0))
    assert count_params(shapes) == expected


@pytest.mark.parametrize("vocab_size", [13, 5000])  # 5000: an embedding too big to batch
@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_each_matrix_is_the_normal_draw_of_its_own_key(vocab_size, mode):
    """init_params batches its random draws to compile faster; the numbers must still be
    exactly those of drawing each matrix from its own key, as trained models expect."""
    config = Config(**{**TINY.to_dict(), "vocab_size": vocab_size})
    init = init_params if mode == "eager" else _init_jit
    params = init(config, jax.random.key(3))
    keys = jax.random.split(jax.random.key(3), 3 + 4 * config.n_layer)
    std, resid_std = 0.02, 0.02 / math.sqrt(2 * config.n_layer)
    matrices = [(params["embed"], std), (params["pos_embed"], std)]
    for block_params in params["blocks"]:
        attn, mlp = block_params["attn"], block_params["mlp"]
        matrices += [(attn["w_qkv"], std), (attn["w_out"], resid_std)]
        matrices += [(mlp["w_in"], std), (mlp["w_out"], resid_std)]
    matrices.append((params["unembed"], std))
    for key, (matrix, scale) in zip(keys, matrices, strict=True):
        draw = lambda key, shape=matrix.shape, scale=scale: scale * jax.random.normal(key, shape)  # noqa: E731
        draw = draw if mode == "eager" else jax.jit(draw)
        np.testing.assert_array_equal(matrix, draw(key))


# --- one block, and hooks ----------------------------------------------------------------


def test_block_for_one_sequence_is_the_forward_pass(params, tokens, run):
    """`block` on one [T, D] sequence gives exactly what `forward` computes for the batch."""
    _, acts = run(params, tokens, TINY, cache=True)
    for layer, block_params in enumerate(params["blocks"]):
        for b in range(tokens.shape[0]):
            resid_pre = acts[f"blocks.{layer}.resid_pre"][b]  # (T, D)
            got = block(resid_pre, block_params, TINY.n_head)  # (T, D)
            np.testing.assert_allclose(got, acts[f"blocks.{layer}.resid_post"][b], atol=1e-6)


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_identity_hooks_and_clean_patches_change_nothing(params, tokens, mode):
    wrap = (lambda f: f) if mode == "eager" else jax.jit
    clean, acts = wrap(lambda p, t: forward(p, t, TINY, cache=True))(params, tokens)
    replaceable = [n for n in activation_names(TINY) if not n.endswith("attn_pattern")]
    identity = {name: (lambda x: x) for name in replaceable}
    hooked = wrap(lambda p, t: forward(p, t, TINY, hooks=identity))(params, tokens)
    np.testing.assert_array_equal(hooked, clean)
    # patching every activation with its own value from the clean run: the clean logits
    patched = {name: (lambda x, v=acts[name]: v) for name in replaceable}
    np.testing.assert_array_equal(forward(params, tokens, TINY, hooks=patched), clean)


def test_a_hook_changes_what_follows(params, tokens):
    clean = forward(params, tokens, TINY)
    zero_mlp = {"blocks.1.mlp_out": lambda x: jnp.zeros_like(x)}
    ablated, acts = forward(params, tokens, TINY, cache=True, hooks=zero_mlp)
    assert not np.allclose(ablated, clean)
    assert not np.any(acts["blocks.1.mlp_out"])  # the cache holds the replacement
    np.testing.assert_array_equal(acts["blocks.1.resid_post"], acts["blocks.1.resid_mid"])


def test_hooks_name_real_replaceable_activations(params, tokens):
    for name in ("blocks.9.resid_pre", "blocks.0.attn_pattern", "embed"):
        with pytest.raises(ValueError, match="can be replaced"):
            forward(params, tokens, TINY, hooks={name: lambda x: x})


# --- errors ------------------------------------------------------------------------------


def test_config_rejects_heads_that_do_not_divide_d_model():
    with pytest.raises(ValueError, match=r"divisible by n_head \(3\).*try n_head=2"):
        Config(vocab_size=10, n_head=3, d_model=8)


INT_FIELDS = ["vocab_size", "n_layer", "n_head", "d_model", "d_mlp", "max_len"]


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [0, -1, 2.5, True, "4"])
def test_config_rejects_non_positive_ints(field, value):
    with pytest.raises(ValueError, match=f"Config.{field} must be a positive int"):
        Config(**{**TINY.to_dict(), field: value})


def test_config_rejects_unknown_norm_and_activation():
    with pytest.raises(ValueError, match="Config.norm must be 'layernorm'; got 'rmsnorm'"):
        Config(vocab_size=10, norm="rmsnorm")
    with pytest.raises(ValueError, match="Config.activation must be 'gelu'; got 'relu'"):
        Config(vocab_size=10, activation="relu")


def test_config_round_trips_through_dict():
    assert Config.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown Config fields"):
        Config.from_dict({**TINY.to_dict(), "dropout": 0.1})


def test_forward_rejects_too_long_wrong_rank_and_float_input(params):
    with pytest.raises(ValueError, match="exceeds config.max_len=12"):
        forward(params, jnp.zeros((1, 13), jnp.int32), TINY)
    with pytest.raises(ValueError, match=r"pass tokens\[None\]"):
        forward(params, jnp.zeros(5, jnp.int32), TINY)
    with pytest.raises(ValueError, match="shape"):
        forward(params, jnp.zeros((1, 2, 3), jnp.int32), TINY)
    with pytest.raises(ValueError, match="integer ids"):
        forward(params, jnp.zeros((1, 5)), TINY)
