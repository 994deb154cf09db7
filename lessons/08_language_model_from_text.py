# %% [markdown]
# # Lesson 8: A language model from text
#
# **Goal:** train a language model on real text: split a corpus by position into
# training and validation text, score every next token of random windows, compare a
# character model with a BPE model in bits per byte, and watch the samples improve
# while it trains.
#
# Lesson 7 scored only the answer of an addition problem. A language model has no
# answers: every token is the answer to "what comes next?" after the tokens before it.
# So the loss counts every next token, and the only thing we choose is the text. Ours is
# the documentation that ships with Python itself (nothing to download). See *validation
# split*, *context window*, *bits per byte* and *unigram entropy* in the
# [glossary](../docs/glossary.md).

# %%
import dataclasses
import math
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

from minitf import corpora, course, model, sample, text
from minitf.course.check import check_here
from minitf.train import TrainConfig, train

course.setup_matplotlib()
QUICK = course.quick_mode()
COMPARE_STEPS_QUICK = 200  # quick mode's character model: one of the BPE model's snapshots
TEMPERATURES = (0.0, 0.5, 1.0, 2.0)  # 0 is greedy
N_SAMPLES = 16  # samples per temperature, to measure what temperature does
start_wall, start_cpu = time.perf_counter(), time.process_time()

# %% [markdown]
# ## The corpus
#
# `corpora.python_docs()` reads English prose from *your* Python: the reference manual's
# topics in the standard library's `pydoc_data` package (what `help("for")` prints)
# and the docstrings of the standard library's own modules, in a fixed order. It is
# built once and kept in the cache; the same Python always gives the same text.

# %%
corpus = corpora.python_docs()
raw = corpus.path.read_text(encoding="utf-8")
print(f"{corpus.name}: {corpus.n_bytes:,} bytes, {len(raw):,} characters; {corpus.source}")
print(repr(raw[:300]))

# %% [markdown]
# ## Training text and validation text, split by position
#
# To know whether a model learned the language or memorised the text, we keep some text
# it never trains on. For running text the honest split is by *position*: the last 10%
# of the corpus is validation text. (Drawing validation windows at random from the
# whole text would put their neighbours, overlapping them, in the training windows.)
#
# ### Exercise 1: `split_by_position`
# Given a 1-D array of token ids and `val_fraction`, return `(train_ids, val_ids)`: the
# first `floor(len(ids) * (1 - val_fraction))` ids, and the rest.

# %%
def split_by_position(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The ids before the cut (training) and from it on (validation). [N] -> [N_train], [N_val]"""
    ### BEGIN SOLUTION
    ids = np.asarray(ids)
    cut = math.floor(len(ids) * (1 - val_fraction))
    return ids[:cut], ids[cut:]
    ### END SOLUTION


# %%
check_here(8, globals(), "split_by_position")

# %% [markdown]
# `minitf.text` cuts the corpus the same way, on its bytes (moved forward to the next
# character boundary, at most 3 bytes), *before* tokenising, and tokenises each part on
# its own: so no token straddles the cut, and a BPE tokenizer learns its merges from the
# training text only. Your function on the corpus's bytes finds the same cut:

# %%
chars = text.text_task(corpus, tokenizer="char", progress=False)  # (cached after the first run)
raw_bytes = np.frombuffer(raw.encode("utf-8"), dtype=np.uint8)  # (n_bytes,)
train_bytes, val_bytes = split_by_position(raw_bytes, text.VAL_FRACTION)
library_cut = len(chars.tokenizer.decode(chars.train_ids).encode("utf-8"))
cut_gap = library_cut - len(train_bytes)  # 0 unless the cut fell inside a character
print(f"split_by_position on the bytes: {len(train_bytes):,} + {len(val_bytes):,}; "
      f"minitf.text's training text: {library_cut:,} bytes "
      f"({len(chars.train_ids):,} characters, validation {len(chars.val_ids):,})")

# %% [markdown]
# ## Windows, and the shift by one
#
# A training batch is `B` windows of `T + 1` consecutive tokens at random places in the
# training text. The model reads the first `T` tokens of each window (its *context*)
# and is scored on predicting tokens `1 .. T`: position `t` predicts token `t + 1`, as in
# lesson 7, but now every position is scored (the loss mask is all `True` except the last
# column, whose next token is outside the window).
#
# ### Exercise 2: `random_windows`
# Return `batch_size` windows of `length` consecutive ids, each starting at a position
# drawn uniformly (with `rng.integers`) from every start where a whole window fits:
# shape `(batch_size, length)`.

# %%
def random_windows(ids: np.ndarray, rng: np.random.Generator, batch_size: int,
                   length: int) -> np.ndarray:
    """Windows of consecutive ids at random starts. [N] -> [batch_size, length]"""
    ### BEGIN SOLUTION
    ids = np.asarray(ids)
    starts = rng.integers(0, len(ids) - length + 1, batch_size)  # (B,): a whole window fits
    return ids[starts[:, None] + np.arange(length)[None]]  # (B, length)
    ### END SOLUTION


# %%
check_here(8, globals(), "random_windows")

# %% [markdown]
# Drawn from the training ids only, no window can hold a validation token. Here is one
# window of the BPE task (1024 tokens, trained on the training text; `␣` is a space),
# what the model reads, and what it must predict at each position:

# %%
bpe = text.text_task(corpus, progress=False)  # BPE, 1024 tokens, context 64
window = random_windows(bpe.train_ids, np.random.default_rng(0), 1, bpe.context + 1)[0]
pieces = [bpe.tokenizer.display(int(i)) for i in window]
print("reads   :", " ".join(pieces[:12]), "...")
print("predicts:", " ".join(pieces[1:13]), "...")
tokens, loss_mask = bpe.batch(np.random.default_rng(0), 4)  # what train() is given
print("a batch:", tokens.shape, "scored per row:", int(loss_mask[0].sum()), "of", tokens.shape[1])
bytes_per_token = len(raw.encode("utf-8")) / (len(bpe.train_ids) + len(bpe.val_ids))
print(f"a BPE token is {bytes_per_token:.2f} bytes of text on average: a window of "
      f"{bpe.context} tokens reads about {bpe.context * bytes_per_token:.0f} bytes")

# %% [markdown]
# ## Measuring a language model: nats per token, bits per byte
#
# The validation loss is the mean cross-entropy of the next token on validation
# windows, in nats per token. A model that knows nothing pays `log V` per token. One
# that only knows how common each token is pays the *unigram entropy*
# (`TextTask.unigram_entropy`). Anything below that uses the context.
#
# Nats per token don't compare across tokenizers: a BPE token is a whole piece of a
# word, so predicting it is harder than predicting one character, and there are fewer
# of them. What does compare is the cost of the *text*: total nats, turned into bits
# (divide by `ln 2`), per byte of text coded. That is *bits per byte*. (A file
# compressor such as gzip gets about 2.5-3 bits per byte on English prose.)
#
# ### Exercise 3: `bits_per_byte`
# Given the mean loss in nats per token over `n_tokens` scored tokens that stand for
# `n_bytes` bytes of UTF-8 text, return the bits per byte.

# %%
def bits_per_byte(nats_per_token: float, n_tokens: int, n_bytes: int) -> float:
    """The same total cost, in bits, per byte of text."""
    ### BEGIN SOLUTION
    return nats_per_token * n_tokens / (math.log(2) * n_bytes)
    ### END SOLUTION


# %%
check_here(8, globals(), "bits_per_byte")

# %% [markdown]
# ## A character model and a BPE model, in bits per byte
#
# `course.trained_text_model()` is the course's language model: 6 blocks, `d_model` 64,
# BPE with 1024 tokens, 400 steps of 32 windows of 64 tokens (trained once, about half a
# minute, then cached; lessons 4, 9 and 10 study it too). We train the same model on
# characters: same size, same steps, same windows of 64 tokens, which now are 64
# characters. Each run is scored by `TextTask.score` on the same 200 validation windows
# of its own tokens. (Quick mode trains the character model for 200 steps and compares it
# with the BPE model as it was at step 200, one of its snapshots.)

# %%
lm = course.trained_text_model()
settings = TrainConfig(**course.TEXT_TRAINING, eval_every=100)  # the course model's settings
if QUICK:  # half the steps, compared with the BPE model as it was at that step
    settings = dataclasses.replace(settings, steps=COMPARE_STEPS_QUICK)
char_config = chars.config(**course.TEXT_MODEL)
char_run = train(char_config, chars, settings, progress=False)
char_score = chars.score(char_run.params, char_config)
bpe_score = lm.task.score(lm.params, lm.config)
if QUICK:  # the same 200 windows, scored when the BPE model had trained as many steps
    at_step = next(s for s in lm.snapshots if s["step"] == settings.steps)
    bpe_score = dataclasses.replace(bpe_score, val_loss=at_step["val_loss"],
                                    bits_per_byte=at_step["bits_per_byte"])
scores = {"characters": char_score, "BPE, 1024 tokens": bpe_score}
entropies = {"characters": chars.unigram_entropy(), "BPE, 1024 tokens": bpe.unigram_entropy()}
vocab = {"characters": chars.tokenizer.vocab_size, "BPE, 1024 tokens": bpe.tokenizer.vocab_size}
print(f"{'':18}{'V':>6}{'log V':>8}{'unigram':>9}{'val loss':>10}{'bits/byte':>11}")
for name, s in scores.items():
    print(f"{name:18}{vocab[name]:>6}{math.log(vocab[name]):>8.2f}{entropies[name]:>9.2f}"
          f"{s.val_loss:>10.3f}{s.bits_per_byte:>11.3f}")

# %%
fig, ax = plt.subplots(figsize=course.FIGSIZE)
bpe_steps = [s["step"] for s in lm.snapshots]
ax.plot(bpe_steps, [s["bits_per_byte"] for s in lm.snapshots], "o-", label="BPE, 1024 tokens")
char_bpb = [text.bits_per_byte(v, 1, 1) for v in char_run.history["val_loss"]]  # 1 byte/char
ax.plot(char_run.history["eval_step"], char_bpb, "s-", label="characters (≈ 1 byte each)")
ax.set_xlabel("training step (32 windows of 64 tokens each)")
ax.set_ylabel("validation bits per byte")
ax.legend()
ax.set_title("Same model, same steps: the BPE model codes the text in fewer bits per byte\n"
             "(each of its windows reads about 2.6 times as much text)", fontsize=9)
course.save_figure(fig, "08_bits_per_byte.png")
plt.close(fig)

# %% [markdown]
# Per token the character model looks better (its tokens are easier to guess); per byte
# of text the BPE model wins, in the same number of steps. Part of the reason is that
# every BPE window holds about 2.6 times as much text, so in the same steps it has read
# 2.6 times more (the character model's windows are about 1 byte per token: this
# corpus is almost all ASCII, so we convert its loss with one byte per character in the
# figure; `score` counts the bytes exactly).
#
# ## Samples as training goes on
#
# While the course model trained, it continued the prompt `"The for statement"` at
# several steps (temperature 0.8, the same random key each time), and its validation
# loss was measured there:

# %%
for s in lm.snapshots:
    flat = s["sample"].replace("\n", "⏎")
    print(f"step {s['step']:>4}  val loss {s['val_loss']:.2f}  {flat[:100]}")
val_losses = [s["val_loss"] for s in lm.snapshots]


# %% [markdown]
# At step 0 the model is random: any token is as likely as any other, so the sample is
# random pieces of the vocabulary. Within a few dozen steps it writes common tokens;
# then words, then phrases that sound like documentation. Judged by eye, that's a
# story; so we count. A sample's *word share* is the share of the words it writes
# (runs of letters) that occur somewhere in the training text.

# %%
train_words = bpe.training_words()  # every run of letters in the training text


def distinct_trigrams(rows: np.ndarray) -> float:
    """Share of distinct token trigrams among all trigrams written: low means repetition."""
    grams = [tuple(r[i : i + 3]) for r in rows.tolist() for i in range(len(r) - 2)]
    return len(set(grams)) / max(1, len(grams))


prompt = np.asarray(bpe.tokenizer.encode(course.TEXT_PROMPT))  # (P,)
prompts = np.tile(prompt, (N_SAMPLES, 1))  # (N, P): each row samples on its own
n_new = lm.config.max_len - len(prompt)
untrained = jax.jit(model.init_params, static_argnums=0)(lm.config, jax.random.key(0))
samples_at = {}  # (which model, temperature) -> (N, P + G) ids
for name, params in (("untrained", untrained), ("trained", lm.params)):
    for t in TEMPERATURES if name == "trained" else (1.0,):
        samples_at[name, t] = sample.generate(params, lm.config, prompts, n_new, temperature=t,
                                              key=jax.random.key(1))
decode = bpe.tokenizer.decode
share = {k: text.word_share([decode(r[len(prompt):]) for r in v], train_words)
         for k, v in samples_at.items()}
distinct = {k: distinct_trigrams(v[:, len(prompt):]) for k, v in samples_at.items()}
print(f"word share, {N_SAMPLES} samples of {n_new} tokens at T = 1: untrained "
      f"{share['untrained', 1.0]:.0%}, trained {share['trained', 1.0]:.0%}")

# %% [markdown]
# ## Temperature on text
#
# Lesson 9 explains temperature on a model with one right answer. On text there are
# many good continuations, and temperature trades between two ways of failing. Greedy
# decoding (`T = 0`) always takes the likeliest token and soon repeats itself, because
# once a phrase is likely it stays likely. Hot sampling (`T = 2`) flattens the
# distribution until rare pieces are drawn, and words fall apart. In between, text
# varies and stays made of words:

# %%
for t in TEMPERATURES:
    flat = decode(samples_at["trained", t][0]).replace("\n", "⏎")
    print(f"T = {t}: {flat[:110]}")
print(f"\n{'T':>4}{'word share':>12}{'distinct trigrams':>19}")
for t in TEMPERATURES:
    print(f"{t:>4}{share['trained', t]:>12.0%}{distinct['trained', t]:>19.0%}")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
ax.plot(TEMPERATURES, [share["trained", t] for t in TEMPERATURES], "o-",
        label="word share (words of the training text)")
ax.plot(TEMPERATURES, [distinct["trained", t] for t in TEMPERATURES], "s-",
        label="distinct token trigrams (1 - repetition)")
ax.set_xlabel("temperature (0 = greedy)")
ax.set_ylim(0, 1.02)
ax.legend(fontsize=8)
ax.set_title("Greedy text repeats itself; hot text stops being words", fontsize=9)
course.save_figure(fig, "08_temperature.png")
plt.close(fig)

# %% [markdown]
# ## What you should see
#
# | quantity | value (the check's bound in parentheses) |
# |---|---|
# | `split_by_position` on the bytes vs `minitf.text`'s cut | the same (at most 3 bytes later) |
# | untrained BPE model (step 0) | val loss about log 1024 = 6.93 (within 0.15) |
# | character model / BPE model: val loss vs unigram entropy | both below it |
# | per token: character vs BPE val loss | 2.34 vs 4.39 nats (quick 2.64 vs 4.64): character lower |
# | per byte: BPE vs character bits/byte | 2.37 vs 3.37 (quick 2.50 vs 3.80): BPE lower by 0.3+ |
# | validation loss at the snapshots | falls at every one |
# | word share at T = 1: untrained / trained | 40% / 68% (higher by 20 points or more) |
# | greedy vs T = 1: distinct trigrams | 1-4% vs 100%: greedy repeats (lower by 0.2 or more) |
# | T = 2 vs T = 0.5: word share | 51-52% vs 82-83%: lower at T = 2 |
#
# Checked below.

# %%
print(f"cpu {time.process_time() - start_cpu:.0f} s, wall {time.perf_counter() - start_wall:.0f} s")
assert 0 <= cut_gap <= 3, cut_gap
assert abs(val_losses[0] - math.log(1024)) < 0.15, val_losses[0]
for name, s in scores.items():
    assert s.val_loss < entropies[name], (name, s, entropies[name])
assert char_score.val_loss < bpe_score.val_loss
assert bpe_score.bits_per_byte < char_score.bits_per_byte - 0.3, scores
assert np.all(np.diff(val_losses) < 0), val_losses
assert share["trained", 1.0] > share["untrained", 1.0] + 0.2, share
assert distinct["trained", 0.0] < distinct["trained", 1.0] - 0.2, distinct
assert share["trained", 2.0] < share["trained", 0.5], share
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/corpora.py`: `Corpus`, `file_corpus` (any UTF-8 file, checked and hashed),
#   `python_docs` (the built-in corpus).
# - `minitf/text.py`: `text_task` (corpus -> tokenizer -> cached ids, split by
#   position), `TextTask.batch` (random windows, `windows_batch`), `validation_windows`,
#   `TextTask.score` and `score_windows` (nats per token and bits per byte),
#   `bits_per_byte`, `TextTask.unigram_entropy`, `word_share`, `continue_text`.
# - `minitf/long_text.py`: reading big files in pieces that BPE splits the same way.
# - `minitf/sample.py`: `generate_long`, which slides the window for text longer than
#   the model's context.
# - `minitf train text`, `minitf sample`, `minitf eval`, `minitf demo text`: the same
#   from the command line.
