"""The logit lens, direct logit attribution and the tuned lens.

The lens is checked against the model itself: its last row must be the model's own
output, its first row the readout of the embeddings alone, and the attribution's pieces
must add back up to the model's logit. On a briefly trained addition model the answer
digit must climb from a poor rank at the embeddings to rank 0 at the output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

from minitf.attribution import direct_logit_attribution
from minitf.chars import CharTokenizer
from minitf.lens import (
    first_top1_layers,
    layer_names,
    lens_log_probs,
    logit_lens,
)
from minitf.model import Config, forward, init_params, logits_from_resid
from minitf.tokens import display_token, visible_bytes
from minitf.tuned_lens import (
    TunedLens,
    kl_per_layer,
    plot_lens_comparison,
    train_tuned_lens,
    tuned_lens,
)
from minitf.words import WordTokenizer

TOK = CharTokenizer("0123456789+= ")
CONFIG = Config(vocab_size=TOK.vocab_size, n_layer=2, n_head=2, d_model=16, d_mlp=32, max_len=16)
TEXT = "12+34= 46"
FORWARD = jax.jit(forward, static_argnames=("config", "cache"))  # one compile per shape


@pytest.fixture(scope="module")
def params():
    """Random weights, scaled up so the layers disagree visibly."""
    p = jax.jit(init_params, static_argnums=0)(CONFIG, jax.random.key(0))  # one compile
    return jax.tree.map(lambda x: x * 5 if x.ndim == 2 else x, p)  # matrices only


@pytest.fixture(scope="module")
def result(params):
    return logit_lens(params, CONFIG, jnp.array(TOK.encode(TEXT)), tokenizer=TOK)


def test_shapes(result):
    L, T, V = CONFIG.n_layer, len(TEXT), CONFIG.vocab_size
    assert result.log_probs.shape == (L + 1, T, V)
    ids, probs = result.top_k(3, position=2)
    assert ids.shape == probs.shape == (L + 1, 3)
    assert result.rank(4, 2).shape == result.prob(4, 2).shape == (L + 1,)
    assert result.kl_to_final().shape == (L + 1, T)
    np.testing.assert_allclose(np.exp(result.log_probs).sum(-1), 1.0, rtol=1e-5)


def test_last_row_is_the_models_own_output(params, result):
    logits = FORWARD(params, jnp.array([TOK.encode(TEXT)]), CONFIG)[0]  # (T, V)
    np.testing.assert_allclose(result.log_probs[-1], jax.nn.log_softmax(logits), atol=1e-5)


def test_first_row_is_the_lens_of_the_embeddings(params, result):
    tokens = jnp.array(TOK.encode(TEXT))
    embeddings = params["embed"][tokens] + params["pos_embed"][: len(TEXT)]  # (T, D)
    expected = jax.nn.log_softmax(logits_from_resid(params, CONFIG, embeddings))  # (T, V)
    np.testing.assert_allclose(result.log_probs[0], expected, atol=1e-5)


def test_top_k_rank_and_prob_agree(result):
    ids, probs = result.top_k(CONFIG.vocab_size, position=-1)  # the whole vocabulary, sorted
    assert np.all(np.diff(probs, axis=-1) <= 0)
    for layer in range(CONFIG.n_layer + 1):
        for place, token in enumerate(ids[layer]):
            assert result.rank(token, -1)[layer] == place  # random floats: no ties
            assert result.prob(token, -1)[layer] == pytest.approx(probs[layer, place])
    first = result.first_top1_layer(ids[-1, 0], -1)
    assert first is not None and result.rank(ids[-1, 0], -1)[first] == 0


def test_kl_to_final(result):
    kl = result.kl_to_final()
    np.testing.assert_allclose(kl[-1], 0.0, atol=1e-6)
    assert np.all(kl[:-1] > 0)


def test_position_out_of_range_says_how_to_fix(result):
    with pytest.raises(ValueError, match="use 0..8"):
        result.rank(1, position=9)
    with pytest.raises(ValueError, match="use 0..12"):
        result.prob(13)
    with pytest.raises(ValueError, match="k must be at least 1"):
        result.top_k(0)
    with pytest.raises(ValueError, match="1-D"):
        logit_lens(None, CONFIG, jnp.zeros((2, 3), dtype=jnp.int32))


def test_docstring_examples_run():
    import doctest

    import minitf.lens

    assert doctest.testmod(minitf.lens).failed == 0


def test_table_lists_layers_and_top_tokens(result):
    text = result.table(position=5, k=2)
    lines = text.splitlines()
    assert len(lines) == 2 + CONFIG.n_layer + 1  # title, header, one row per layer
    ids, _ = result.top_k(2, position=5)
    for name, line, row in zip(layer_names(CONFIG.n_layer), lines[2:], ids, strict=True):
        assert line.startswith(name)
        for token in row:
            assert f" {display_token(TOK, token)} " in line
    assert "12+34=" in lines[0]


def test_table_context_keeps_the_spaces_between_words(params):
    words = WordTokenizer([str(d) for d in range(10)] + ["plus", "equals", "x"])
    text = "1 plus 2 equals"
    lens = logit_lens(params, CONFIG, jnp.array(words.encode(text)), tokenizer=words)
    assert f"having read {text}" in lens.table(position=3).splitlines()[0]


def test_plot_returns_a_figure_and_writes_a_png(result, tmp_path):
    fig = result.plot(tmp_path / "lens.png")
    assert isinstance(fig, plt.Figure)
    assert (tmp_path / "lens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cell_texts = {t.get_text() for t in fig.axes[0].texts}
    assert display_token(TOK, result.log_probs[-1, -1].argmax()) in cell_texts
    plt.close(fig)


# --- showing tokens ----------------------------------------------------------------------


class ByteTokens:
    """A tokenizer of byte strings shown the way minitf.bpe.Tokenizer shows its tokens."""

    vocab = [b"\xf0", b" the", "é".encode(), "🦄".encode(), b"\n", b"a\xf0\x9f", b"<|end|>"]

    def display(self, i: int) -> str:
        return visible_bytes(self.vocab[i])


@pytest.mark.parametrize(
    "token_id, shown",
    [
        (0, "<0xF0>"),
        (1, "␣the"),
        (2, "é"),
        (3, "🦄"),
        (4, "\\n"),
        (5, "a<0xF0><0x9F>"),
        (6, "<|end|>"),
    ],  # fmt: skip
)
def test_display_byte_tokens(token_id, shown):
    assert display_token(ByteTokens(), token_id) == shown


def test_display_with_the_bpe_tokenizer():
    bpe = pytest.importorskip("minitf.bpe")
    tok = bpe.Tokenizer.train("the cat and the hat and the bat " * 20, 265)
    the = tok.encode(" the")
    assert len(the) == 1 and display_token(tok, the[0]) == "␣the"
    assert tok.token_str(the[0]) == "Ġthe"  # GPT-2's printable form, which we don't show
    assert display_token(tok, tok.byte_id(0xF0)) == "<0xF0>"
    assert display_token(tok, tok.byte_id(0xC3)) == "<0xC3>"  # not 'Ã' (mojibake)


def test_display_char_tokens_and_no_tokenizer():
    assert [display_token(TOK, i) for i in TOK.encode("7+ ")] == ["7", "+", "␣"]
    assert display_token(None, 5) == "[5]"


# --- direct logit attribution -------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 4, -1])
def test_attribution_sums_to_the_logit(params, position):
    tokens = jnp.array(TOK.encode(TEXT))
    logits = FORWARD(params, tokens[None], CONFIG)[0]  # (T, V)
    token = int(logits[position].argmax())
    attr = direct_logit_attribution(params, CONFIG, tokens, token, position, tokenizer=TOK)
    assert attr.logit == pytest.approx(float(logits[position, token]), abs=1e-5)
    assert attr.values.sum() == pytest.approx(attr.logit, abs=1e-4)
    # one entry per head per block, plus embed, pos_embed, attn bias, mlp, final norm bias
    assert len(attr.labels) == len(attr.values) == 3 + CONFIG.n_layer * (CONFIG.n_head + 2)
    assert sum(attr.by_block().values()) == pytest.approx(attr.logit, abs=1e-4)


def test_attribution_heads_sum_to_the_attention_output(params):
    """With zero attention bias, the heads' pieces are the whole attention block's."""
    tokens = jnp.array(TOK.encode(TEXT))
    attr = direct_logit_attribution(params, CONFIG, tokens, 3, 2)
    by_block = attr.by_block()
    heads = [v for l, v in zip(attr.labels, attr.values, strict=True) if l.startswith("1.attn.h")]
    assert sum(heads) == pytest.approx(by_block["1.attn"], abs=1e-6)  # bias is 0 at init


def test_attribution_plot(params, tmp_path):
    attr = direct_logit_attribution(params, CONFIG, jnp.array(TOK.encode(TEXT)), 3, -1)
    fig = attr.plot(tmp_path / "dla.png")
    assert isinstance(fig, plt.Figure) and (tmp_path / "dla.png").stat().st_size > 0
    plt.close(fig)


# --- tuned lens ----------------------------------------------------------------------------


def test_untrained_tuned_lens_is_the_logit_lens(params, result):
    tokens = jnp.array(TOK.encode(TEXT))
    tuned = tuned_lens(params, CONFIG, tokens, TunedLens.identity(CONFIG))
    np.testing.assert_allclose(tuned.log_probs, result.log_probs, atol=1e-6)
    assert tuned.name == "tuned lens"


def test_training_the_tuned_lens_reduces_kl(params, tmp_path):
    sequences = jax.random.randint(jax.random.key(1), (64, 10), 0, CONFIG.vocab_size)
    tuned, losses = train_tuned_lens(params, CONFIG, sequences, steps=80, lr=1e-2, seed=0)
    assert losses[-1] < 0.5 * losses[0]
    logit_rows = lens_log_probs(params, sequences, CONFIG)  # (L+1, N, T, V)
    tuned_rows = lens_log_probs(params, sequences, CONFIG, tuned.translate)  # (L+1, N, T, V)
    before, after = kl_per_layer(logit_rows), kl_per_layer(tuned_rows)  # (L+1,) each
    assert np.all(after[:-1] < 0.5 * before[:-1])  # every translated layer got closer
    # the model's own output row is never translated
    np.testing.assert_allclose(tuned_rows[-1], logit_rows[-1], atol=1e-6)
    fig = plot_lens_comparison(params, CONFIG, sequences, tuned, tmp_path / "kl.png")
    assert (tmp_path / "kl.png").stat().st_size > 0
    plt.close(fig)


# --- a trained addition model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def addition_model():
    """A small one-digit addition model, trained a few hundred steps (shared by the tests)."""
    from minitf.tasks import addition, config_for
    from minitf.train import train

    task = addition(1)
    config = config_for(task, n_layer=2, n_head=2, d_model=32, d_mlp=64)
    run = train(config, task, steps=300, batch_size=32, lr=1e-2, seed=0, progress=False)
    return task, config, jax.tree.map(jnp.asarray, jax.device_get(run.params))


def test_lens_on_the_addition_model(addition_model):
    task, config, params = addition_model
    prompts, answers = task.problems(np.random.default_rng(0), 40, "train")  # (n, P), (n, A)
    tokens = np.concatenate([prompts, answers], axis=1)  # (n, T)
    T = tokens.shape[1]
    logits = FORWARD(params, jnp.asarray(tokens), config=config)  # (n, T, V)
    first_ranks, first_layers = [], []
    for seq, logit in zip(tokens, logits, strict=True):
        result = logit_lens(params, config, seq, tokenizer=task.tokenizer)
        np.testing.assert_allclose(
            result.log_probs[-1], jax.nn.log_softmax(logit), atol=1e-5, rtol=1e-5
        )
        ones_digit = seq[-1]  # the last answer digit, predicted after the tens digit
        ranks = result.rank(ones_digit, position=T - 2)  # (L+1,)
        if ranks[-1] == 0:  # the model solves this one
            first_ranks.append(ranks[0])
        first_layers.append(result.first_top1_layer(ones_digit, position=T - 2))
    assert len(first_ranks) >= 30  # the model has learned the task
    # at the embeddings only the tens digit is known: the answer digit ranks poorly there,
    # and climbs to rank 0 at the output
    assert np.mean(first_ranks) > 1 and np.mean(np.array(first_ranks) > 0) > 0.75
    # the batched helper agrees with the one-sequence lens (None = never: L + 1)
    answer_positions = np.arange(task.prompt_len - 1, T - 1)  # (A,) where answer digits come
    first = first_top1_layers(params, config, tokens, answer_positions)  # (n, A)
    assert first.shape == (40, task.answer_len)
    never = config.n_layer + 1
    assert first[:, -1].tolist() == [never if f is None else f for f in first_layers]


# --- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(params, tmp_path_factory):
    from minitf.checkpoint import save_checkpoint

    run = tmp_path_factory.mktemp("run")
    save_checkpoint(run / "checkpoint", jax.device_get(params), CONFIG, TOK, step=7)
    return run


def test_cli_lens_prints_the_table_and_writes_the_heatmap(checkpoint, capsys):
    from minitf.cli import main

    assert main(["lens", str(checkpoint), "12+34=", "--k", "2", "--position", "4"]) == 0
    out = capsys.readouterr().out
    assert "position 4" in out and all(name in out for name in layer_names(CONFIG.n_layer))
    assert (checkpoint / "lens.png").stat().st_size > 0  # beside checkpoint/, not inside
    target = checkpoint / "figs" / "mine.png"
    assert main(["lens", str(checkpoint / "checkpoint"), "1+2", "--out", str(target)]) == 0
    assert target.stat().st_size > 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("12*3", "not in this tokenizer's alphabet"),
        ("1" * 17, "max_len=16; shorten it"),
        ("", "TEXT is empty"),
    ],  # fmt: skip
)
def test_cli_lens_explains_bad_text(checkpoint, capsys, text, message):
    from minitf.cli import main

    assert main(["lens", str(checkpoint), text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minitf: error:") and message in err
