"""Generation: the KV cache changes nothing but speed, and each sampling rule picks the
tokens it promises. A tiny model with larger-than-init weights, so that its outputs vary.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitf.model import Config, forward, init_params
from minitf.sample import (
    filter_top_k,
    filter_top_p,
    forward_with_cache,
    generate,
    init_cache,
    sample_next,
)

# most tests share (PROMPTS.shape, N), and so share compilations; T0 + N = max_len
CONFIG = Config(vocab_size=11, n_layer=2, n_head=2, d_model=16, d_mlp=32, max_len=11)
PROMPTS = np.array([[1, 2, 3], [7, 0, 5]])  # (B, T0)
N = 8  # new tokens: together with the prompt they fill every position the model has
# hot enough that samples vary a lot from key to key; every filter in play
SAMPLING = {"temperature": 3.0, "top_k": 6, "top_p": 0.9}


@pytest.fixture(scope="module")
def params():
    """Random parameters of init_params' shapes, drawn by numpy (nothing to compile): layer
    norm scales 1, everything else std 0.2, ten times GPT-2's init, so that predictions are
    sharp and varied (a test below checks that they are)."""
    rng = np.random.default_rng(1)
    shapes = jax.eval_shape(lambda key: init_params(CONFIG, key), jax.random.key(0))

    def draw(path, leaf):
        if path[-1].key == "scale":
            return jnp.ones(leaf.shape)
        return jnp.asarray(rng.normal(0.0, 0.2, leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


_forward_jit = jax.jit(forward, static_argnames="config")
_forward_with_cache_jit = jax.jit(forward_with_cache, static_argnames="config")


# --- the KV cache ------------------------------------------------------------------------


def test_forward_with_cache_gives_forward_logits(params):
    """Prefill a prefix, then feed the rest one token at a time: same logits as `forward`."""
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, 11, (2, 11)))  # (B, T)
    expected = _forward_jit(params, tokens, CONFIG)  # (B, T, V)
    step = functools.partial(_forward_with_cache_jit, params, CONFIG)
    cache = init_cache(CONFIG, batch=2, length=13)  # room to spare: empty slots are masked
    logits, cache = step(tokens[:, :4], cache, 0)  # (B, 4, V): the prefill
    steps = [logits]
    for pos in range(4, 11):
        logits, cache = step(tokens[:, pos : pos + 1], cache, pos)  # (B, 1, V): a decode step
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), expected, atol=1e-5)
    assert cache[0]["k"].shape == (2, 13, CONFIG.n_head, CONFIG.d_head)  # (B, L, H, K)
    assert (cache[0]["k"][:, 11:] == 0).all()  # slots never written stay empty


def test_cached_and_uncached_greedy_agree_and_are_argmax(params):
    cached = generate(params, CONFIG, PROMPTS, N, temperature=0)  # (B, T0 + N)
    uncached = generate(params, CONFIG, PROMPTS, N, temperature=0, use_cache=False)
    np.testing.assert_array_equal(cached, uncached)
    # greedy means: every new token is the argmax of the logits one position earlier
    # (one forward pass checks them all, since logits at t see only tokens up to t)
    logits = _forward_jit(params, jnp.asarray(cached), CONFIG)  # (B, T0 + N, V)
    T0 = PROMPTS.shape[1]
    np.testing.assert_array_equal(cached[:, T0:], np.argmax(logits[:, T0 - 1 : -1], axis=-1))
    assert len(set(cached[:, T0:].ravel())) > 3  # the model says varied things: a real test


def test_cached_and_uncached_sampling_agree(params):
    key = jax.random.key(2)
    cached = generate(params, CONFIG, PROMPTS, N, key=key, **SAMPLING)
    uncached = generate(params, CONFIG, PROMPTS, N, key=key, use_cache=False, **SAMPLING)
    np.testing.assert_array_equal(cached, uncached)


# --- sampling rules ----------------------------------------------------------------------


def test_top_k_of_one_is_greedy_at_any_temperature():
    logits = jnp.asarray(np.random.default_rng(3).normal(size=(64, 20)), jnp.float32)  # (B, V)
    greedy = sample_next(logits, jax.random.key(0), temperature=0)  # (B,)
    np.testing.assert_array_equal(greedy, np.argmax(logits, axis=-1))
    for temperature in (0.5, 10.0):
        top1 = sample_next(logits, jax.random.key(3), temperature, top_k=1)  # (B,)
        np.testing.assert_array_equal(top1, greedy)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_samples_follow_the_softmax_of_logits_over_temperature(temperature):
    logits = np.array([2.0, 1.0, 0.0, -1.0], dtype=np.float32)  # (V,)
    rows = jnp.asarray(np.tile(logits, (20_000, 1)))  # (B, V): one draw per row
    draws = np.asarray(sample_next(rows, jax.random.key(11), temperature))  # (B,)
    frequencies = np.bincount(draws, minlength=4) / len(draws)  # (V,)
    expected = np.exp(logits / temperature) / np.exp(logits / temperature).sum()  # (V,)
    np.testing.assert_allclose(frequencies, expected, atol=0.015)  # about 4 standard errors


def test_greedy_accepts_and_ignores_a_key(params):
    without = generate(params, CONFIG, PROMPTS, N, temperature=0)
    with_key = generate(params, CONFIG, PROMPTS, N, temperature=0, key=jax.random.key(4))
    np.testing.assert_array_equal(with_key, without)


def test_same_key_same_tokens_different_key_different_tokens(params):
    def sample(seed: int) -> np.ndarray:
        return generate(params, CONFIG, PROMPTS, N, key=jax.random.key(seed), **SAMPLING)

    np.testing.assert_array_equal(sample(5), sample(5))
    # at a high temperature, 16 tokens from 6 or more choices rarely coincide by chance
    assert not np.array_equal(sample(5), sample(6))


def test_rows_of_a_batch_draw_their_own_samples(params):
    same_prompt = np.repeat(PROMPTS[:1], 2, axis=0)  # (2, T0): two copies of one prompt
    out = generate(params, CONFIG, same_prompt, N, key=jax.random.key(7), **SAMPLING)
    assert not np.array_equal(out[0], out[1])


NEG = -np.inf


def test_filter_top_k_keeps_the_k_largest():
    logits = jnp.array([[1.0, 3.0, 2.0, 5.0, 4.0], [0.0, -1.0, 9.0, 8.0, -2.0]])  # (B, V)
    np.testing.assert_array_equal(
        filter_top_k(logits, 2), [[NEG, NEG, NEG, 5.0, 4.0], [NEG, NEG, 9.0, 8.0, NEG]]
    )
    np.testing.assert_array_equal(filter_top_k(logits, 5), logits)  # k = V keeps all
    # a tie with the k-th largest is kept: there is no fair way to pick between them
    np.testing.assert_array_equal(
        filter_top_k(jnp.array([3.0, 2.0, 2.0, 0.0]), 2), [3.0, 2.0, 2.0, NEG]
    )


# probabilities 0.5, 0.3, 0.15, 0.05 in a shuffled order
TOP_P_LOGITS = np.log(np.array([0.15, 0.5, 0.05, 0.3], dtype=np.float32))  # (V,)


@pytest.mark.parametrize(
    "p, kept",
    [
        (0.4, [1]),  # 0.5 alone already reaches 0.4
        (0.6, [1, 3]),  # 0.5 falls short; 0.3 crosses 0.6 and is kept (the boundary token)
        (0.85, [1, 3, 0]),  # 0.5 + 0.3 = 0.8 < 0.85, so 0.15 too
        (0.96, [1, 3, 0, 2]),  # 0.95 < 0.96: every token
        (1.0, [1, 3, 0, 2]),
    ],
)
def test_filter_top_p_keeps_the_smallest_set_reaching_p(p, kept):
    filtered = np.asarray(filter_top_p(TOP_P_LOGITS, p))  # (V,)
    expected = np.full(4, NEG)
    expected[kept] = np.asarray(TOP_P_LOGITS)[kept]
    np.testing.assert_array_equal(filtered, expected)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_filter_top_p_on_random_rows(p):
    """For any logits: the kept tokens are the most likely ones, their mass reaches p,
    and without the least likely of them it would not."""
    rows = 3 * np.random.default_rng(8).normal(size=(16, 50))  # (B, V)
    logits = jnp.asarray(rows, jnp.float32)  # (B, V)
    filtered = np.asarray(filter_top_p(logits, p))  # (B, V)
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))  # (B, V)
    for row in range(16):
        kept = np.isfinite(filtered[row])  # (V,)
        assert probs[row][kept].min() > probs[row][~kept].max(initial=-1.0)
        mass = probs[row][kept].sum()
        assert mass >= p - 1e-6
        assert mass - probs[row][kept].min() < p


def test_filters_are_jittable_and_batched():
    logits = jnp.asarray(np.random.default_rng(9).normal(size=(3, 7)), jnp.float32)  # (B, V)
    np.testing.assert_array_equal(
        jax.jit(filter_top_p, static_argnums=1)(logits, 0.5), filter_top_p(logits, 0.5)
    )
    assert np.isfinite(np.asarray(filter_top_k(logits, 3))).sum(axis=-1).tolist() == [3, 3, 3]


# --- shapes, batching and errors ---------------------------------------------------------


def test_batch_generation_equals_one_row_at_a_time(params):
    batch = generate(params, CONFIG, PROMPTS, N, temperature=0)  # (B, T0 + N)
    for row, prompt in enumerate(PROMPTS):
        alone = generate(params, CONFIG, list(prompt), N, temperature=0)  # (T0 + N,)
        np.testing.assert_array_equal(alone, batch[row])


def test_output_rank_follows_the_prompt(params):
    one = generate(params, CONFIG, [4, 2, 6], N, temperature=0)
    assert isinstance(one, np.ndarray) and one.shape == (CONFIG.max_len,)
    assert one[:3].tolist() == [4, 2, 6]
    two = generate(params, CONFIG, np.array([[4, 2, 6]]), N, temperature=0)
    assert two.shape == (1, CONFIG.max_len)
    np.testing.assert_array_equal(two[0], one)
    np.testing.assert_array_equal(generate(params, CONFIG, [4, 2], 0, temperature=0), [4, 2])


@pytest.mark.parametrize(
    "prompt, kwargs, message",
    [
        ([], {}, "prompt is empty"),
        ([[]], {}, "prompt is empty"),
        ([[1, 2], [3]], {}, "same length"),
        ([[[1]]], {}, "1-D .* or 2-D"),
        ([1.0, 2.0], {}, "integer token ids"),
        ([1, 11], {}, r"0\.\.10"),
        ([-1], {}, r"0\.\.10"),
        ([1, 2, 3], {"max_new_tokens": 9}, r"3 \+ max_new_tokens 9 = 12 exceeds .*at most 8"),
        ([1], {"max_new_tokens": -1}, "0 or more"),
        (list(range(11)) * 2, {"max_new_tokens": -5}, "keep the last 11 tokens"),
        ([1], {"max_new_tokens": 2.0}, "must be an int"),
        ([1], {"temperature": -0.5}, "temperature must be"),
        ([1], {"temperature": float("nan")}, "temperature must be"),
        ([1], {"temperature": 1.0, "key": None}, "needs a key"),
        ([1], {"temperature": 1.0, "key": 5}, r"key must be a jax\.random\.key"),
        ([1], {"top_k": 0}, "top_k must be an int >= 1"),
        ([1], {"top_k": 2.5}, "top_k must be an int >= 1"),
        ([1], {"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ([1], {"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ],
)
def test_bad_arguments_say_how_to_fix_them(params, prompt, kwargs, message):
    kwargs = {"max_new_tokens": 2, "temperature": 0.0, "key": jax.random.key(0)} | kwargs
    with pytest.raises(ValueError, match=message):
        generate(params, CONFIG, prompt, **kwargs)
