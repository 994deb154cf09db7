"""Vocabulary surgery: new rows and their inits, tokenizers that grow, frozen fine-tuning,
widening d_model (and how close its output stays)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import minitf.model as model_module
import minitf.surgery as surgery_module
from minitf.bpe import Tokenizer
from minitf.chars import CharTokenizer
from minitf.model import Config, forward, init_params
from minitf.surgery import add_tokens, finetune, token_id, widen
from minitf.tasks import addition, config_for
from minitf.vectors import nearest_tokens
from minitf.words import WordTokenizer

WORDS = ["the", "sea", "horse", "fish", "emoji-of", "FISH_EMOJI", "HORSE_EMOJI", "."]


def tiny(tied: bool = False, vocab_size: int = len(WORDS), d_model: int = 16) -> Config:
    return Config(
        vocab_size=vocab_size, n_layer=2, n_head=2, d_model=d_model, d_mlp=32, max_len=12,
        tie_embeddings=tied,
    )


def perturbed_params(config: Config, seed: int = 0, scale: float = 0.1):
    """Random params with non-trivial norms and biases, closer to a trained model's."""
    params = init_params(config, jax.random.key(seed))
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: jnp.asarray(x + scale * rng.standard_normal(x.shape), jnp.float32), params
    )


def log_softmax_kl(ref_logits, new_logits) -> float:
    """max over positions of KL(ref || new), in nats."""
    p, q = jax.nn.log_softmax(ref_logits), jax.nn.log_softmax(new_logits)
    return float((jnp.exp(p) * (p - q)).sum(-1).max())


# --- add_tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [False, True])
def test_add_tokens_inits_and_old_logits_unchanged(tied: bool) -> None:
    config, tok = tiny(tied), WordTokenizer(WORDS)
    params = perturbed_params(config)
    inits = ["mean", "random", {"sea": 0.5, "horse": 0.5}, {6: 1.0, "FISH_EMOJI": 1.0}]
    new_words = ["SEAHORSE_EMOJI", "CRAB_EMOJI", "seahorse", "FISHHORSE_EMOJI"]
    new, new_config, new_tok = add_tokens(
        params, config, tok, new_words, inits, key=jax.random.key(3)
    )
    V = config.vocab_size
    assert new_config.vocab_size == V + 4 and new_tok.vocab_size == V + 4
    assert new_tok.encode("emoji-of seahorse SEAHORSE_EMOJI") == [4, V + 2, V]
    names = ["embed"] if tied else ["embed", "unembed"]
    assert ("unembed" in new) == (not tied)
    for name in names:
        old, grown = params[name], new[name]  # (V, D), (V + 4, D)
        np.testing.assert_array_equal(grown[:V], old)
        np.testing.assert_allclose(grown[V], old.mean(axis=0), rtol=1e-6)
        assert 0.005 < float(grown[V + 1].std()) < 0.05  # N(0, 0.02)
        np.testing.assert_allclose(grown[V + 2], 0.5 * (old[1] + old[2]), rtol=1e-6)
        np.testing.assert_allclose(grown[V + 3], old[6] + old[5], rtol=1e-6)
    # every other parameter is the same object, untouched
    assert new["blocks"] is params["blocks"] and new["ln_final"] is params["ln_final"]
    # inputs made of old tokens: old tokens' logits are exactly the old ones
    tokens = jnp.array([tok.encode("the sea horse . emoji-of fish FISH_EMOJI")])  # (1, 7)
    np.testing.assert_allclose(
        forward(new, tokens, new_config)[..., :V], forward(params, tokens, config), atol=1e-6
    )


def test_mean_init_keeps_old_predictions_within_the_jensen_bound() -> None:
    """With the mean row, p(new) <= 1/V, so KL(old || new) = -log(1 - p(new)) <= log(1 + 1/V)."""
    config = tiny(vocab_size=len(WORDS))
    params = perturbed_params(config, scale=1.0)  # big weights: peaked predictions
    tokens = jax.random.randint(jax.random.key(5), (4, 12), 0, config.vocab_size)  # (4, 12)
    old = forward(params, tokens, config)  # (4, 12, V)
    new, new_config, _ = add_tokens(params, config, None, ["NEW"], "mean")
    grown = forward(new, tokens, new_config)  # (4, 12, V + 1)
    p_old = jax.nn.softmax(old)  # (4, 12, V)
    log_new = jax.nn.log_softmax(grown)[..., :-1]  # (4, 12, V): the old tokens' share
    kl = (p_old * (jax.nn.log_softmax(old) - log_new)).sum(-1)  # (4, 12)
    p_added = jnp.exp(jax.nn.log_softmax(grown)[..., -1])  # (4, 12)
    # the old tokens' logits are unchanged, so the KL is exactly -log(1 - p(new))
    np.testing.assert_allclose(kl, -jnp.log1p(-p_added), atol=1e-5)
    assert float(p_added.max()) <= 1 / config.vocab_size + 1e-6
    assert float(kl.max()) <= math.log(1 + 1 / config.vocab_size) + 1e-6


def test_add_tokens_errors() -> None:
    config, tok = tiny(), WordTokenizer(WORDS)
    params = init_params(config, jax.random.key(0))
    with pytest.raises(ValueError, match="needs a key"):
        add_tokens(params, config, tok, ["X"], "random")
    with pytest.raises(ValueError, match="not a single token"):
        add_tokens(params, config, tok, ["X"], {"unicorn": 1.0})
    with pytest.raises(ValueError, match="init must be"):
        add_tokens(params, config, tok, ["X"], "zeros")
    with pytest.raises(ValueError, match="one each"):
        add_tokens(params, config, tok, ["X", "Y"], ["mean"])
    with pytest.raises(ValueError, match="line up"):
        add_tokens(params, tiny(vocab_size=20), tok, ["X"])
    with pytest.raises(ValueError, match="twice"):
        add_tokens(params, config, tok, ["sea"])


def test_char_tokenizer_grows() -> None:
    tok = CharTokenizer("0123456789+=")
    config = tiny(vocab_size=tok.vocab_size)
    params = init_params(config, jax.random.key(0))
    _, new_config, new_tok = add_tokens(params, config, tok, ["-"], {"+": 1.0})
    assert new_tok.encode("1-2=") == [1, 12, 2, 11] and new_config.vocab_size == 13
    with pytest.raises(ValueError, match="one character per token"):
        add_tokens(params, config, tok, ["--"])


def test_bpe_tokenizer_grows_by_special_tokens_and_by_one_merge() -> None:
    tok = Tokenizer.train("the sea horse swims in the sea " * 20, 262, pattern="gpt4")
    config = tiny(vocab_size=tok.vocab_size)
    params = init_params(config, jax.random.key(0))
    assert len(tok.encode("zq")) == 2  # two raw bytes: a pair no merge has made
    _, new_config, new_tok = add_tokens(params, config, tok, ["<|seahorse|>"], special=True)
    _, _, new_tok = add_tokens(params, new_config, new_tok, ["zq"], {"z": 0.5, "q": 0.5})
    V = tok.vocab_size
    assert new_tok.vocab_size == V + 2
    assert new_tok.encode("a <|seahorse|>", allowed_special="all")[-1] == V
    assert new_tok.encode("xzqy") == [ord("x"), V + 1, ord("y")]  # the new merge applies
    text = "the sea horse swims"
    assert new_tok.encode(text) == tok.encode(text)  # old text, old ids
    assert token_id(new_tok, "<|seahorse|>") == V
    with pytest.raises(ValueError, match="one new merge of two"):
        add_tokens(params, config, tok, ["xyzw"])


# --- fine-tuning only the new rows -------------------------------------------------------------


def batches(config: Config, new_id: int, seed: int = 0):
    """Random sequences in which the new token appears often; every prediction scored."""
    rng = np.random.default_rng(seed)
    while True:
        tokens = rng.integers(0, config.vocab_size, (8, config.max_len))  # (8, T)
        tokens[:, ::3] = new_id  # (8, T)
        yield tokens, np.ones_like(tokens, dtype=bool)


@pytest.mark.parametrize("tied", [False, True])
def test_finetune_only_new_rows_leaves_everything_else_bit_identical(tied: bool) -> None:
    config, tok = tiny(tied), WordTokenizer(WORDS)
    params = perturbed_params(config)
    new, new_config, _ = add_tokens(params, config, tok, ["NEW"], "random", key=jax.random.key(1))
    V = config.vocab_size
    # weight decay on: AdamW must still not shrink the frozen rows
    result = finetune(
        new, new_config, batches(new_config, V), steps=6, lr=0.05, only_rows=[V],
        weight_decay=0.1,
    )
    assert result.steps == 6 and result.losses[-1] < result.losses[0]
    tuned = result.params
    for name in ["embed"] if tied else ["embed", "unembed"]:
        np.testing.assert_array_equal(np.asarray(tuned[name][:V]), np.asarray(new[name][:V]))
        assert not np.array_equal(np.asarray(tuned[name][V]), np.asarray(new[name][V]))
    frozen = {k: v for k, v in new.items() if k not in ("embed", "unembed")}
    for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(
        {k: tuned[k] for k in frozen}), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_finetune_everything_and_early_stop() -> None:
    config = tiny()
    params = perturbed_params(config)
    seen = []
    result = finetune(
        params, config, batches(config, 1), steps=50, lr=0.01,
        callback=lambda step, p: seen.append(step) or step >= 4, check_every=2,
    )
    assert result.steps == 4 and seen == [0, 2, 4]
    assert not np.array_equal(  # everything trains, not only the vocabulary
        np.asarray(result.params["blocks"][0]["attn"]["w_qkv"]),
        np.asarray(params["blocks"][0]["attn"]["w_qkv"]),
    )
    with pytest.raises(ValueError, match="only_rows"):
        finetune(params, config, batches(config, 1), steps=1, only_rows=[99])


def test_finetune_reuses_its_compiled_step_and_starts_fresh_each_time() -> None:
    """Comparing inits of one new token (lessons 14, 15) compiles the step once; the
    optimizer state is still new for every run, so equal inputs give equal results."""
    config = tiny()
    params = perturbed_params(config)
    runs = [finetune(params, config, batches(config, 1), steps=3, only_rows=[1]) for _ in "ab"]
    for a, b in zip(jax.tree.leaves(runs[0].params), jax.tree.leaves(runs[1].params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    settings = surgery_module.finetune_settings(3, 1e-2)
    first = surgery_module._optimizer_and_step(params, config, settings, [1])
    assert surgery_module._optimizer_and_step(params, config, settings, np.array([1])) is first
    assert surgery_module._optimizer_and_step(params, config, settings, None) is not first


# --- widening ------------------------------------------------------------------------------------

# Measured on these perturbed models (D = 16, two blocks, activations of std ~0.1-1):
# preserve=True stays within ~4e-4 of the old logits and KL < 1e-6 for every variant
# below, and the whole remaining error is LayerNorm's epsilon (with eps = 0 it drops to
# float32 rounding, ~1e-6); plain zero padding is off by ~1 logit, KL ~0.1 nats.
WIDEN_CASES = [
    (False, 48, None),  # (tied, new d_model, new n_head): wider heads
    (True, 32, None),
    (False, 32, 4),  # same head width, two new heads
]


@pytest.mark.parametrize(("tied", "new_d", "n_head"), WIDEN_CASES)
def test_widen_preserves_the_output_up_to_the_norms_epsilon(tied, new_d, n_head, monkeypatch):
    config = tiny(tied)
    params = perturbed_params(config)
    tokens = jax.random.randint(jax.random.key(2), (4, 12), 0, config.vocab_size)  # (4, 12)
    ref = forward(params, tokens, config)  # (4, 12, V)
    wide, wide_config = widen(params, config, new_d, n_head=n_head)
    assert wide_config.d_model == new_d and wide["embed"].shape == (config.vocab_size, new_d)
    assert wide_config.n_head == (n_head or config.n_head)
    out, acts = forward(wide, tokens, wide_config, cache=True)  # (4, 12, V)
    assert float(jnp.abs(out - ref).max()) < 2e-3
    assert log_softmax_kl(ref, out) < 1e-5
    # the new dimensions of the residual stream hold no information: zero (untied), or
    # the stream's own mean (tied), which the norms remove
    extra = acts["blocks.1.resid_post"][..., config.d_model :]  # (4, 12, D' - D)
    assert float(jnp.abs(extra - extra[..., :1]).max()) < 1e-5
    # naive zero padding leaves the layer norms' statistics wrong
    naive, naive_config = widen(params, config, new_d, n_head=n_head, preserve=False)
    assert log_softmax_kl(ref, forward(naive, tokens, naive_config)) > 1e-3
    # what is left is the epsilon: without it the copy is exact up to rounding
    monkeypatch.setattr(model_module, "LN_EPS", 0.0)
    exact = forward(wide, tokens, wide_config) - forward(params, tokens, config)
    assert float(jnp.abs(exact).max()) < 1e-5


@pytest.mark.parametrize(("tied", "new_d", "n_head"), WIDEN_CASES)
def test_widen_with_noise_keeps_the_output_of_plain_widen(tied, new_d, n_head):
    config = tiny(tied)
    params = perturbed_params(config)
    tokens = jax.random.randint(jax.random.key(2), (4, 12), 0, config.vocab_size)  # (4, 12)
    plain, wide_config = widen(params, config, new_d, n_head=n_head)
    noisy, _ = widen(params, config, new_d, n_head=n_head, noise_std=0.05, key=jax.random.key(1))
    np.testing.assert_allclose(forward(noisy, tokens, wide_config),
                               forward(plain, tokens, wide_config), atol=1e-5)
    D = config.d_model
    w_qkv = noisy["blocks"][0]["attn"]["w_qkv"]  # (D', 3D')
    assert 0.03 < float(w_qkv[D:].std()) < 0.07  # the rows reading the new dimensions
    assert float(jnp.abs(noisy["blocks"][0]["mlp"]["w_in"][D:]).min()) > 0
    # what writes into the new dimensions is untouched: they start as plain widen's
    np.testing.assert_array_equal(noisy["pos_embed"], plain["pos_embed"])
    np.testing.assert_array_equal(noisy["blocks"][1]["attn"]["w_out"],
                                  plain["blocks"][1]["attn"]["w_out"])


def _new_dims_after_finetuning(noise_std: float) -> tuple[np.ndarray, np.ndarray]:
    """Widen a tiny trained-from-scratch model 16 -> 32, fine-tune everything 40 steps;
    -> (the new columns of embed (V, 16), the rows of w_out for the new head slots)."""
    task = addition(2)
    config = config_for(task, n_layer=1, n_head=2, d_model=16, d_mlp=32)
    params = perturbed_params(config, seed=3)
    wide, wide_config = widen(params, config, 32, noise_std=noise_std, key=jax.random.key(0))
    rng = np.random.default_rng(0)
    batches = (task.batch(rng, 32) for _ in range(40))
    tuned = finetune(wide, wide_config, batches, steps=40, lr=1e-2).params
    w_out = np.asarray(tuned["blocks"][0]["attn"]["w_out"])  # (D', D'), rows: head slots
    new_slots = np.asarray(surgery_module._new_slots(2, 8, 2, 16))  # (D',)
    return np.asarray(tuned["embed"])[:, 16:], w_out[new_slots]


def test_without_noise_the_new_dimensions_move_in_lockstep_and_with_noise_they_dont():
    embed_new, w_out_new = _new_dims_after_finetuning(0.0)
    # the symmetry is never broken: 16 identical columns, head slots that never move
    np.testing.assert_array_equal(embed_new, np.broadcast_to(embed_new[:, :1], embed_new.shape))
    assert not np.any(w_out_new)
    embed_new, w_out_new = _new_dims_after_finetuning(0.02)
    singular = np.linalg.svd(embed_new, compute_uv=False)  # (16,) or (V,)
    assert (singular > 1e-3 * singular[0]).sum() >= 8  # many independent new directions
    assert float(np.abs(w_out_new).max()) > 1e-3  # the new head slots write something


def test_widen_errors() -> None:
    config = tiny()
    params = init_params(config, jax.random.key(0))
    with pytest.raises(ValueError, match="at least d_model"):
        widen(params, config, 8)
    with pytest.raises(ValueError, match="head width"):
        widen(params, config, 40, n_head=3)
    with pytest.raises(ValueError, match="needs a key"):
        widen(params, config, 32, noise_std=0.01)


# --- nearest tokens under the unembedding (minitf.vectors) ----------------------------------------


@pytest.mark.parametrize("tied", [False, True])
def test_nearest_tokens_are_the_logits_and_a_midpoint_snaps(tied: bool) -> None:
    config = tiny(tied)
    params = perturbed_params(config)
    tokens = jnp.array([[0, 1, 2, 3]])  # (1, 4)
    logits, acts = forward(params, tokens, config, cache=True)
    ids, scores = nearest_tokens(params, config, acts["ln_final.out"][0, -1], k=3)
    np.testing.assert_array_equal(ids, jnp.argsort(-logits[0, -1])[:3])
    np.testing.assert_allclose(scores, logits[0, -1, ids], rtol=1e-5, atol=1e-6)
    raw_ids, _ = nearest_tokens(
        params, config, acts["blocks.1.resid_post"][0, -1], k=3, final_norm=True
    )
    np.testing.assert_array_equal(raw_ids, ids)
    # a vector halfway between two tokens' rows: the nearer one (by dot product) wins
    w_u = params["embed"] if tied else params["unembed"]  # (V, D)
    ids, cos = nearest_tokens(params, config, 0.5 * (w_u[5] + w_u[6]), k=2, metric="cosine")
    assert set(np.asarray(ids).tolist()) == {5, 6} and float(cos[1]) > 0.5
    with pytest.raises(ValueError, match="one residual vector"):
        nearest_tokens(params, config, acts["ln_final.out"][0])
    with pytest.raises(ValueError, match="metric"):
        nearest_tokens(params, config, w_u[0], metric="l2")


def test_word_tokenizer_round_trip_and_errors() -> None:
    tok = WordTokenizer(WORDS)
    ids = tok.encode("emoji-of sea horse HORSE_EMOJI .")
    assert tok.decode(ids) == "emoji-of sea horse HORSE_EMOJI ." and tok.display(ids[1]) == "sea"
    assert WordTokenizer.from_description(tok.describe()).words == tok.words
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("unicorn")
    with pytest.raises(ValueError, match="no space"):
        WordTokenizer(["sea horse"])
