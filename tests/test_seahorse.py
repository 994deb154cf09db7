"""The seahorse toy language: its vocabulary lacks the emoji, its batches follow the task
interface, its held-out prompts are fixed, and kl_after_adding matches its identity."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitf.course import seahorse
from minitf.model import forward, init_params
from minitf.surgery import add_tokens


def test_vocabulary_has_every_word_and_no_seahorse_emoji() -> None:
    tok = seahorse.vocabulary()
    assert seahorse.MISSING not in tok.ids
    assert set(seahorse.emoji_tokens()) <= set(tok.words)
    assert tok.words[-len(seahorse.emoji_tokens()) :] == seahorse.emoji_tokens()  # emojis last
    tok.encode(seahorse.PROMPT)  # every word of the prompt exists
    rng = np.random.default_rng(0)
    for _ in range(200):  # every sentence the generator writes can be encoded
        tok.encode(seahorse.sentence(rng, emoji_share=0.5))
    assert seahorse.vocabulary().words == tok.words  # deterministic: ids never move


def test_sentences_follow_their_shares() -> None:
    rng = np.random.default_rng(1)
    sentences = [seahorse.sentence(rng, emoji_share=0.0) for _ in range(100)]
    assert not any(seahorse.MARKER in s for s in sentences)
    sentences = [seahorse.sentence(rng, emoji_share=1.0) for _ in range(100)]
    assert all(s.startswith(seahorse.MARKER) and s.split()[-2].endswith("_EMOJI")
               for s in sentences)  # fmt: skip
    assert seahorse.sentence(rng, emoji_share=0.0, seahorse_share=1.0) == (
        f"{seahorse.MARKER} sea horse {seahorse.MISSING} .")


def test_batches_and_held_out_prompts() -> None:
    tok = seahorse.vocabulary()
    language = seahorse.ToyLanguage(tok)
    tokens, mask = language.batch(np.random.default_rng(0), 4)
    assert tokens.shape == mask.shape == (4, seahorse.SEQ) and tokens.dtype == np.int32
    assert mask[:, :-1].all() and not mask[:, -1].any()
    again, _ = language.batch(np.random.default_rng(0), 4)
    np.testing.assert_array_equal(tokens, again)
    assert int(tokens.max()) < tok.vocab_size
    unrelated = seahorse.unrelated_prompts(tok, n=8)  # (8, SEQ)
    emoji_ids = [tok.ids[e] for e in seahorse.emoji_tokens()] + [tok.ids[seahorse.MARKER]]
    assert unrelated.shape == (8, seahorse.SEQ) and not np.isin(unrelated, emoji_ids).any()
    np.testing.assert_array_equal(unrelated, seahorse.unrelated_prompts(tok, n=8))
    contexts = seahorse.seahorse_contexts(tok, n=5)  # (5, 12)
    assert contexts.shape == (5, 12)
    assert all(tok.decode(row).endswith(f"{seahorse.MARKER} sea horse") for row in contexts)
    with pytest.raises(ValueError, match="never learned"):  # the last position is untrained
        seahorse.seahorse_contexts(tok, length=seahorse.SEQ)
    with pytest.raises(ValueError, match="not in the vocabulary"):  # the fix needs the new word
        next(seahorse.ToyLanguage(tok, seahorse_share=1.0).batches(0, 2))
    fixed = seahorse.ToyLanguage(tok.with_tokens([seahorse.MISSING]), seahorse_share=1.0)
    assert tok.vocab_size in next(fixed.batches(0, 2))[0]


def test_fix_inits_and_kl_after_adding() -> None:
    tok = seahorse.vocabulary()
    config = dataclasses.replace(seahorse.model_config(tok), n_layer=1, d_model=16, d_mlp=32)
    params = init_params(config, jax.random.key(0))
    prompts = seahorse.unrelated_prompts(tok, n=4)  # (4, SEQ)
    inits = seahorse.fix_inits(tok)
    assert len(inits) == 4
    combo = inits["sea + horse + emoji dir."]
    # the emoji direction's weights cancel: it adds nothing along the all-rows-equal direction
    assert abs(sum(combo.values()) - 1.0) < 1e-6 and combo["sea"] > 0.4
    for init in inits.values():
        new, new_config, _ = add_tokens(params, config, tok, [seahorse.MISSING], init,
                                        key=jax.random.key(1))  # fmt: skip
        kl_mean, kl_max = seahorse.kl_after_adding(params, config, new, new_config, prompts)
        p_new = jax.nn.softmax(forward(new, jnp.asarray(prompts), new_config))[..., -1]
        # only a row was added, so KL(old || new) = -log(1 - p(new)) at every position
        np.testing.assert_allclose(kl_mean, float(-jnp.log1p(-p_new).mean()), rtol=1e-3,
                                   atol=1e-7)  # fmt: skip
        assert 0.0 <= kl_mean <= kl_max
    assert seahorse.kl_after_adding(params, config, params, config, prompts)[1] < 1e-6
