# %% [markdown]
# # Lesson 10: The logit lens
#
# **Goal:** read the addition model's prediction off the residual stream after every
# layer, and watch the answer form: layer by layer, through a learned translator (the
# tuned lens), and over the course of training.
#
# The model reads its prediction off the *last* residual: final layer norm, then the
# unembedding. Nothing stops us from applying that same readout to the residual after
# block 0, or to the embeddings alone, and asking "what would the model say if it
# stopped here?" That is the *logit lens*; see *logit lens*, *tuned lens*, *KL
# divergence* and *teacher forcing* in the [glossary](../docs/glossary.md).

# %%
import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from minitf import course, model
from minitf.course.check import check_here
from minitf.lens import first_top1_layers, layer_names, lens_depth, lens_log_probs, logit_lens
from minitf.plots import plot_first_top1_layer
from minitf.tasks import train_defaults
from minitf.text import validation_windows
from minitf.train import train
from minitf.tuned_lens import lens_kl_per_layer, plot_lens_comparison, train_tuned_lens

course.setup_matplotlib()
QUICK = course.quick_mode()
N_PROBLEMS = 200 if QUICK else 500  # held-out problems for the statistics
TUNED_STEPS = 100 if QUICK else 300  # training steps of the tuned lens
TEXT_TUNED_STEPS = 200  # the text model's tuned lens: the same in both modes
# lens over training: quick mode runs a short version with smaller batches
LOT_STEPS, LOT_EVERY, LOT_BATCH = (200, 25, 64) if QUICK else (1500, 150, 128)

# %% [markdown]
# ## The model we look into
#
# The demo's model: 3-digit addition (`123+045=0168`), 2 blocks, 4 heads, `d_model` 64,
# trained with `minitf train`'s defaults (1500 steps). `course.trained_model()` trains it
# once and then loads it from a cache; quick mode uses the same model.

# %%
params, config, task = course.trained_model()
P, A = task.prompt_len, task.answer_len  # 8 prompt tokens "123+045=", 4 answer digits
exact = task.evaluate(params, config, n=500)
print(f"{config.n_layer} blocks, exact match on held-out problems: {exact:.1%}")

# %% [markdown]
# ## The lens on one problem
#
# We feed the whole problem, answer included (*teacher forcing*): the prediction *at*
# position `t` is the model's guess for the token at `t + 1`. So the answer's first digit
# is predicted at the `=` (position `P - 1`), the second at the first answer digit, and so
# on. `logit_lens` returns log-probabilities of shape `(L + 1, T, V)`: row 0 reads the
# embeddings, row `l` the residual after `l` blocks, the last row is the model's output.

# %%
prompts, answers = task.problems(np.random.default_rng(1), 1, "test")  # (1, P), (1, A)
tokens = np.concatenate([prompts[0], answers[0]])  # (T,): one held-out problem
text = task.tokenizer.decode(tokens)
lens = logit_lens(params, config, tokens, tokenizer=task.tokenizer)
print("problem:", text, " lens rows:", lens.log_probs.shape)
for i in range(A):
    print(lens.table(position=P - 1 + i, k=3), "\n")

# %% [markdown]
# ### Exercise 1: `logit_lens_row`
# Write the lens's readout for residual vectors of any leading shape: the final layer
# norm (`model.layer_norm` with `params["ln_final"]`), then the unembedding
# (`model.unembed_matrix(params, config)`, shape `(V, D)`: logits are `x @ W_U.T`), then
# `jax.nn.log_softmax` over the vocabulary. This is all the logit lens is.

# %%
def logit_lens_row(resid: jax.Array, params: dict, config: model.Config) -> jax.Array:
    """The lens's log-probabilities for residual vectors. [..., D] -> [..., V]"""
    ### BEGIN SOLUTION
    normed = model.layer_norm(resid, params["ln_final"])  # (..., D)
    logits = normed @ model.unembed_matrix(params, config).T  # (..., V)
    return jax.nn.log_softmax(logits, axis=-1)  # (..., V)
    ### END SOLUTION


# %%
check_here(10, globals(), "logit_lens_row")

# %% [markdown]
# The last row is the model: applied to the final residual, the readout *is* the
# model's output, so the lens's last row must equal `log_softmax` of `forward`'s logits.

# %%
forward = jax.jit(model.forward, static_argnames="config")  # compiled once, not op by op
logits = forward(params, jnp.asarray(tokens)[None], config)[0]  # (T, V)
last_row_diff = float(np.abs(lens.log_probs[-1] - jax.nn.log_softmax(logits)).max())
print(f"last lens row vs the model's log-probs: max difference {last_row_diff:.1e}")

fig = lens.plot(title=f"Logit lens on {text}: each cell is the top guess for the next token")
course.save_figure(fig, "10_lens_heatmap.png")
plt.close(fig)

# %% [markdown]
# Read the heatmap only from the `=` on. Training scores just the predictions of the
# answer digits (the loss mask of lesson 7): the cells from `=` to the third answer
# digit. At the prompt positions, and at the last one, nothing was ever asked of the
# model, yet its output there is just as dark, confident. Over held-out problems:

# %%
heat_prompts, heat_answers = task.problems(np.random.default_rng(2), 200, "test")
heat_tokens = np.concatenate([heat_prompts, heat_answers], axis=1)  # (200, T)
# the lens's last row is the model's own output
output_lp = np.asarray(lens_log_probs(params, jnp.asarray(heat_tokens), config))[-1]  # (200,T,V)
confidence = np.exp(output_lp.max(-1)).mean(0)  # (T,): the top token's probability
next_right = (output_lp[:, :-1].argmax(-1) == heat_tokens[:, 1:]).mean(0)  # (T-1,)
print(f"{'position':>9}" + "".join(f"{t:>6}" for t in range(P + A)))
print(f"{'top p':>9}" + "".join(f"{x:>6.2f}" for x in confidence))
print(f"{'right':>9}" + "".join(f"{x:>6.2f}" for x in next_right))

# %% [markdown]
# At the prompt positions the top guess has a probability around 0.9 and is right about
# one time in ten, chance for a random digit; after the third digit of an operand (which
# is always followed by `+` or `=`) it is never right. A confident cell is not a
# meaningful one: the lens, like the model, only means something where training looked.

# %% [markdown]
# ## The rank of the right digit, layer by layer
#
# A heatmap shows the top token; the *rank* of the right one says how far off a layer
# is: 0 means it is on top, 1 that one token beats it, and so on.
#
# ### Exercise 2: `rank_of`
# Given log-probs `(..., V)` and a token id, return for every row the number of tokens
# that are *strictly* likelier than that token (so tied tokens share a rank), as ints.

# %%
def rank_of(log_probs: jax.Array, token_id: int) -> jax.Array:
    """Rank of `token_id` in each distribution: 0 = most likely. [..., V] -> [...] int"""
    ### BEGIN SOLUTION
    target = log_probs[..., token_id, None]  # (..., 1)
    return (log_probs > target).sum(axis=-1)  # (...)
    ### END SOLUTION


# %%
check_here(10, globals(), "rank_of")

# %%
names = layer_names(config.n_layer)
digit_names = ["thousands", "hundreds", "tens", "units"][-A:]  # the answer's places
print(f"{text}: rank (probability) of the right answer digit, per row of the lens")
print(f"{'row':9}" + "".join(f"{d:>14}" for d in digit_names))
for row, name in enumerate(names):
    cells = [f"{lens.rank(int(answers[0, i]), P - 1 + i)[row]} "
             f"({lens.prob(int(answers[0, i]), P - 1 + i)[row]:.0%})" for i in range(A)]
    print(f"{name:9}" + "".join(f"{c:>14}" for c in cells))
first_rows = [lens.first_top1_layer(int(answers[0, i]), P - 1 + i) for i in range(A)]
print("first row with the right digit on top:", dict(zip(digit_names, first_rows, strict=True)))

# %% [markdown]
# ## How far is each layer from the final answer? KL to final
#
# Rank looks at one token. The KL divergence `KL(final || layer)` compares whole
# distributions: how many extra nats it costs, on average, to code the model's real
# predictions with this layer's. It is 0 for the last row by definition.
#
# ### Exercise 3: `kl_to_final`
# Given lens log-probs `(L + 1, ..., V)` whose last row is the model's output, return
# `KL(final || layer)` for every row, shape `(L + 1, ...)`:
# `sum_v p_final(v) * (log p_final(v) - log p_layer(v))`.

# %%
def kl_to_final(log_probs: jax.Array) -> jax.Array:
    """KL(final || layer) in nats for every row. [L+1, ..., V] -> [L+1, ...]"""
    ### BEGIN SOLUTION
    final = log_probs[-1:]  # (1, ..., V)
    return (jnp.exp(final) * (final - log_probs)).sum(axis=-1)  # (L+1, ...)
    ### END SOLUTION


# %%
check_here(10, globals(), "kl_to_final")

# %% [markdown]
# `LensResult.kl_to_final` does the same for one sequence. Our problem's answer
# positions (rows: the lens's rows; columns: thousands, hundreds, tens, units):

# %%
kl_one = lens.kl_to_final()[:, P - 1 : P - 1 + A]  # (L+1, A): rows x answer digits
for name, row in zip(names, kl_one, strict=True):
    print(f"{name:9}" + "".join(f"{x:>11.2f}" for x in row))

# %% [markdown]
# ## Many problems: where does each digit appear?
#
# One problem is an anecdote. `lens_log_probs` runs the lens on a whole batch of
# held-out problems at once, `(L + 1, N, T, V)`. We keep the answer positions and ask,
# per row: how often is the right digit on top, what is its mean rank, and how far is
# the row from the final distribution?

# %%
test_prompts, test_answers = task.problems(np.random.default_rng(2), N_PROBLEMS, "test")
test_tokens = np.concatenate([test_prompts, test_answers], axis=1)  # (N, T)
positions = np.arange(P - 1, P - 1 + A)  # (A,): where each answer digit is predicted
log_probs = np.asarray(lens_log_probs(params, jnp.asarray(test_tokens), config))  # (L+1,N,T,V)
answer_lp = log_probs[:, :, positions]  # (L+1, N, A, V)
target_lp = np.take_along_axis(answer_lp, test_answers[None, :, :, None], axis=-1)  # (L+1,N,A,1)
ranks = (answer_lp > target_lp).sum(axis=-1)  # (L+1, N, A)
top1 = (ranks == 0).mean(axis=1)  # (L+1, A): share of problems with the right digit on top
final = answer_lp[-1:]  # (1, N, A, V)
kl = (np.exp(final) * (final - answer_lp)).sum(axis=-1).mean(axis=1)  # (L+1, A)

print(f"over {N_PROBLEMS} held-out problems, per row of the lens:")
print(f"{'row':9}" + "".join(f"{d + ' top-1':>16}" for d in digit_names))
for row, name in enumerate(names):
    print(f"{name:9}" + "".join(f"{x:>16.1%}" for x in top1[row]))
print(f"\n{'row':9}" + "".join(f"{d + ' KL':>16}" for d in digit_names))
for row, name in enumerate(names):
    print(f"{name:9}" + "".join(f"{x:>16.2f}" for x in kl[row]))

fig, (ax_top, ax_kl) = plt.subplots(1, 2, figsize=course.FIGSIZE)
for i, digit in enumerate(digit_names):
    ax_top.plot(names, top1[:, i], marker="o", label=digit)
    ax_kl.plot(names, kl[:, i], marker="o", label=digit)
ax_top.set_ylabel("right digit on top (share of problems)")
ax_kl.set_ylabel("KL(final || row), nats")
for ax in (ax_top, ax_kl):
    ax.set_xlabel("residual stream read after")
ax_top.legend(title="answer digit", fontsize=8)
fig.suptitle("Through the logit lens the thousands digit is on top after block 0, the other "
             "digits only after block 1", fontsize=9)
course.save_figure(fig, "10_lens_by_layer.png")
plt.close(fig)

# %% [markdown]
# The thousands digit is 0 or 1 (the carry out of the hundreds column): the embeddings
# alone guess it half the time, and after block 0 it is on top for most problems (72% to
# 94% in models trained from three different seeds). The other three digits are on top
# after block 0 only about a quarter to a third of the time, and their KL after block 0
# is still large, 2 nats or more: the lens reads block 0's residual as a confident wrong
# answer. So is the answer computed in block 1?
#
# ## The tuned lens: is the answer there, just in another basis?
#
# The logit lens assumes that every layer already "speaks" the unembedding's language.
# Maybe block 0's residual holds the answer in a form the final readout can't read.
# The *tuned lens* (Belrose et al., 2023) learns, for each row, an affine map
# `resid + resid @ W + b` into the final layer's basis, trained to minimise the KL to the
# model's own output (the model is frozen). It starts as the identity, i.e. the logit
# lens. We train it on training batches and measure on the held-out problems.

# %%
train_sequences, _ = task.batch(np.random.default_rng([0, 10**6]), 512)  # (512, T)
tuned, tuned_losses = train_tuned_lens(params, config, train_sequences, steps=TUNED_STEPS,
                                       seed=0)
kl_logit = lens_kl_per_layer(params, config, test_tokens)  # (L+1,): mean over all positions
kl_tuned = lens_kl_per_layer(params, config, test_tokens, tuned)  # (L+1,)
# the tuned lens is the logit lens with the residuals translated first
tuned_lp = lens_log_probs(params, jnp.asarray(test_tokens), config, tuned.translate)
tuned_top1 = np.asarray(
    (tuned_lp[:, :, positions].argmax(-1) == test_answers[None]).mean(axis=1))  # (L+1, A)
print(f"tuned lens training loss: {tuned_losses[0]:.2f} -> {tuned_losses[-1]:.2f} nats")
print(f"{'row':9}{'KL logit':>10}{'KL tuned':>10}" + "".join(f"{d[:5] + ' top-1':>12}"
                                                           for d in digit_names) + "  (tuned)")
for row, name in enumerate(names):
    print(f"{name:9}{kl_logit[row]:>10.3f}{kl_tuned[row]:>10.3f}"
          + "".join(f"{x:>12.0%}" for x in tuned_top1[row]))

fig = plot_lens_comparison(params, config, test_tokens, tuned)
course.save_figure(fig, "10_tuned_lens_kl.png")
plt.close(fig)

# %% [markdown]
# Measured, not assumed: the tuned lens cuts the KL after block 0 several-fold, and puts
# the right hundreds, tens and units digit on top after block 0 in 70% to 99% of the
# problems (three seeds; quick mode's shorter training of the lens a little less), where
# the logit lens managed a quarter to a third. So after block 0 those digits are mostly
# *there*, in a basis the unembedding doesn't read, and block 1 writes them into the
# unembedding's basis (lesson 11: block 1's MLP writes most of their logit). The tuned
# lens can't invent information either: on the embeddings alone (one token each) it stays
# near chance for those digits.
#
# ## The lens over training
#
# Finally, watch the answer appear while the model learns. `train`'s `callback` sees the
# parameters after every step; ours keeps a copy every `LOT_EVERY` steps. Then
# `first_top1_layers` runs the lens on each copy over held-out problems and reports, per
# answer digit, the first row at which the right digit is on top (`L + 1`, "never",
# when not even the output gets it).

# %%
snapshots = []  # (step, parameters): the model while it learns


def keep_snapshot(step: int, params: dict) -> None:
    if step % LOT_EVERY == 0 or step == LOT_STEPS:
        snapshots.append((step, jax.device_get(params)))


_, defaults = train_defaults(task)  # the settings course.trained_model used
train(config, task, defaults, steps=LOT_STEPS, batch_size=LOT_BATCH, callback=keep_snapshot,
      progress=False)  # fmt: skip
lot_prompts, lot_answers = task.problems(np.random.default_rng(3), N_PROBLEMS, "test")
lot_tokens = np.concatenate([lot_prompts, lot_answers], axis=1)  # (N, T): the whole problem
steps = np.array([step for step, _ in snapshots])  # (C,)
first = np.stack([first_top1_layers(p_, config, lot_tokens, positions)
                  for _, p_ in snapshots])  # (C, N, A)
mean_first = first.mean(axis=1)  # (C, A): mean over problems of the first row on top
never = config.n_layer + 1
solved = (first < never).all(axis=2).mean(axis=1)  # (C,): every digit right at the output
print(f"first row with the right digit on top (mean; 0 = embed, {never} = never)")
print(f"{'step':>6}" + "".join(f"{d:>11}" for d in digit_names) + f"{'solved':>9}")
for step, row, share in zip(steps, mean_first, solved, strict=True):
    print(f"{step:>6}" + "".join(f"{x:>11.2f}" for x in row) + f"{share:>9.0%}")

curves = {digit: mean_first[:, i] for i, digit in enumerate(digit_names)}
fig = plot_first_top1_layer(steps, curves, names, title="Lens over training: when each answer "
                           "digit first reaches the top, and after which layer")
course.save_figure(fig, "10_lens_over_training.png")
plt.close(fig)

# %% [markdown]
# At step 0 (the untrained model) no problem is solved, and the three digits that need
# the sum are almost never on top (a mean above 2.5 of a possible 3). The thousands digit
# comes first: by the first snapshot it is on top after block 0 or earlier (mean about
# 0.5). The hundreds digit follows, then the tens and units, and the share of fully
# solved problems climbs. The full run (the same settings as the model above) ends with
# the thousands digit below 1, the other digits at about 1.5, and every problem solved;
# quick mode's short run stops partway.

# %% [markdown]
# ## The same on real text: a prediction forming over depth
#
# Two blocks leave little room for a middle. The course's language model (lesson 8) has
# six: 6 blocks, `d_model` 64, BPE with 1024 tokens, trained on Python's own docs.
# We run the lens on validation text (64 windows of 64 tokens, 4096 predictions) and
# ask, at every position, about the token the model *finally* puts on top, right or
# wrong: how high does each row of the lens rank it, at which row does it first reach
# the top (its *prediction depth*), and how far is each row's whole distribution from
# the final one (KL)? `lens_depth` does all of it in batches.

# %%
lm = course.trained_text_model()
text_names = layer_names(lm.config.n_layer)
text_windows = validation_windows(lm.task.val_ids, lm.task.context, 64, seed=0)
text_tokens = text_windows[:, :-1]  # (64, T): what the model reads
text_depth = lens_depth(lm.params, lm.config, text_tokens)
n_rows = lm.config.n_layer + 1
text_ranks = text_depth.ranks.reshape(n_rows, -1)  # (L+1, 4096)
text_top1 = (text_ranks == 0).mean(axis=1)  # (L+1,)
text_kl = text_depth.kl.reshape(n_rows, -1).mean(axis=1)  # (L+1,)
text_first = np.bincount(text_depth.first_top1.ravel(), minlength=n_rows) / text_ranks.shape[1]
q25, q50, q75, q90 = np.percentile(text_ranks, [25, 50, 75, 90], axis=1)  # (L+1,) each
print(f"{'row':9}{'rank: median':>13}{'25-75%':>9}{'90%':>6}{'on top':>8}{'first on top':>14}"
      f"{'KL':>8}")
for row, name in enumerate(text_names):
    print(f"{name:9}{q50[row]:>13.0f}{f'{q25[row]:.0f}-{q75[row]:.0f}':>9}{q90[row]:>6.0f}"
          f"{text_top1[row]:>8.0%}{text_first[row]:>14.0%}{text_kl[row]:>8.3f}")
middle_share = text_first[2:-1].sum()  # first on top after blocks 1..L-2: the middle

# %% [markdown]
# Read the columns. After the embeddings alone (row `embed`, no block has run) the final
# token is on top for about a quarter of the positions: the token it follows nearly
# decides them (after `␣def`, a name; after `(`, a parameter). Block 0 adds about as
# many again. The rest, about a quarter of all positions, reach the top only in the
# middle blocks or at the very end: those are the predictions that need the context. The
# median rank is 0 early, but the 90th percentile and the KL show the tail being pulled
# in block by block.
#
# The tuned lens (above) asks whether early rows hold more than the unembedding can read
# off them. We train one on training windows (small batches keep it fast) and measure
# it on the same validation windows:

# %%
text_train, _ = lm.task.batch(np.random.default_rng([0, 10**6]), 256)  # (256, T+1)
text_tuned, _ = train_tuned_lens(lm.params, lm.config, text_train[:, :-1],
                                 steps=TEXT_TUNED_STEPS, batch_size=8, seed=0)  # fmt: skip
tuned_depth = lens_depth(lm.params, lm.config, text_tokens, translate=text_tuned.translate)
tuned_ranks = tuned_depth.ranks.reshape(n_rows, -1)  # (L+1, 4096)
tuned_top1_text = (tuned_ranks == 0).mean(axis=1)  # (L+1,)
tuned_kl_text = tuned_depth.kl.reshape(n_rows, -1).mean(axis=1)  # (L+1,)
print(f"{'row':9}{'KL logit':>10}{'KL tuned':>10}{'on top, logit':>15}{'tuned':>7}")
for row, name in enumerate(text_names):
    print(f"{name:9}{text_kl[row]:>10.3f}{tuned_kl_text[row]:>10.3f}{text_top1[row]:>15.0%}"
          f"{tuned_top1_text[row]:>7.0%}")

fig, (ax_rank, ax_kl) = plt.subplots(1, 2, figsize=course.FIGSIZE)
rows = np.arange(n_rows)
ax_rank.plot(rows, q90, "o-", label="logit lens, 90th percentile")
ax_rank.fill_between(rows, q25, q75, alpha=0.3, label="logit lens, 25-75%")
ax_rank.plot(rows, np.percentile(tuned_ranks, 90, axis=1), "s--", label="tuned lens, 90th pct")
ax_rank.set_yscale("symlog", linthresh=1)
ax_rank.set_ylabel("rank of the final top-1 token")
ax_kl.plot(rows, text_kl, "o-", label="logit lens")
ax_kl.plot(rows, tuned_kl_text, "s--", label="tuned lens")
ax_kl.set_yscale("symlog", linthresh=1e-3)
ax_kl.set_ylabel("KL(final || row), nats")
for ax in (ax_rank, ax_kl):
    ax.set_xticks(rows, text_names, rotation=45, fontsize=7)
    ax.legend(fontsize=7)
fig.suptitle("A 6-block language model on validation text: the final prediction closes in "
             "block by block", fontsize=9)
course.save_figure(fig, "10_text_lens_depth.png")
plt.close(fig)

# %% [markdown]
# The tuned lens is closer to the final distribution at every row, several times
# closer early on, and finds the final token on top right after the embeddings for
# far more positions: part of what the logit lens shows "forming" in the middle is
# there early, in a basis the unembedding doesn't read.
#
# One worked example, chosen by a rule from the measurements above, not by hand: among
# the validation positions where the model's final top-1 token is the real next token
# and the logit lens first puts it on top in a middle row (after block 1, 2 or 3), the
# one the model is surest of.

# %%
final_lp = lens_log_probs(lm.params, jnp.asarray(text_tokens), lm.config)[-1]  # (N, T, V)
final_top = np.asarray(final_lp.argmax(-1))  # (N, T)
final_p = np.exp(np.asarray(final_lp.max(-1)))  # (N, T)
right = final_top == text_windows[:, 1:]  # (N, T): the real next token
middle = (text_depth.first_top1 >= 2) & (text_depth.first_top1 <= 4)  # after blocks 1..3
candidates = np.argwhere(right & middle)  # (n, 2): (window, position)
n_candidates = len(candidates)
w, p = candidates[np.argmax(final_p[tuple(candidates.T)])]
example = logit_lens(lm.params, lm.config, text_tokens[w], tokenizer=lm.task.tokenizer)
shown = slice(max(0, p - 11), p + 1)  # the last 12 positions up to the example
cut = dataclasses.replace(example, log_probs=example.log_probs[:, shown],
                          tokens=example.tokens[shown])
print(f"{n_candidates} positions fit the rule; the example is window {w}, position {p}:")
print(cut.table(position=-1, k=3))
example_first = int(text_depth.first_top1[w, p])
fig = cut.plot(title="Logit lens on validation text: the answer first reaches the top in "
               f"a middle block ({text_names[example_first]})")
course.save_figure(fig, "10_text_lens_heatmap.png")
plt.close(fig)

# %% [markdown]
# ## What you should see
#
# | quantity | value |
# |---|---|
# Measured in fresh full runs on models trained from seeds 0, 1 and 2 (the lesson uses
# seed 0); the bounds in parentheses are what the cell below checks.
#
# | quantity | value |
# |---|---|
# | exact match of the model | 99.4-100% (> 99%) |
# | last lens row vs the model's log-probs | equal (max diff < 1e-4) |
# | output at prompt positions: top probability / right | about 0.9 (> 0.8) / about 0.1 (< 0.2) |
# | logit lens, embeddings: right hundreds/tens/units digit on top | 7-15% (< 25%) |
# | logit lens, after block 0: right thousands digit on top | 72-94% (> 65%) |
# | logit lens, after block 0: right hundreds/tens/units digit on top | 24-36% (15-55%) |
# | logit lens, after block 0: KL to final for hundreds/tens/units | 2.2-6.6 nats (> 1.5) |
# | right digit on top at the output / KL there | 100% (> 98%) / 0 |
# | tuned lens KL after block 0 (all positions) | 9-18% of the logit lens's (< 30%) |
# | tuned lens, after block 0: hundreds/tens/units on top | 74-99% (> 60%, > twice the logit lens) |
# | tuned lens, embeddings: hundreds/tens/units on top | 8-20% (< 30%, near chance) |
# | lens over training, step 0: solved; mean first row, hundreds/tens/units | 0%; 2.6-2.8 (> 2.5) |
# | first snapshot after step 0: thousands | about 0.5 (< 1) |
# | first snapshot: hundreds / tens and units | 1.7-2.2 / 2.3-2.6 (> 1.5; hundreds lowest) |
# | last snapshot: thousands / hundreds | 0.55-0.87 (< 1) / about 1.5 (< 2) |
# | share of problems solved, last snapshot | above the first; 100% in full mode (> 95%) |
# | text model: final token first on top in the middle blocks (1..4) | 21-29% (> 15%) |
# | text model: final token already on top after the embeddings alone | 28-33% (10-45%) |
# | text model: KL to final, logit lens | falls at every row |
# | text model: share with the final token on top | rises at every row |
# | text model: rank's 90th percentile, embeddings / after block 4 | > 10 / <= 2 |
# | text model: tuned / logit lens KL, every row before the last / the embeddings | < 0.6 / < 0.3 |
# | text model: tuned lens, on top after the embeddings | 15 points or more above the logit lens |
# | text model: positions that fit the worked example's rule | 44-66 (at least 30) |
#
# Checked below.

# %%
assert exact > 0.99, exact
assert last_row_diff < 1e-4, last_row_diff
assert confidence[: P - 1].mean() > 0.8 and next_right[: P - 1].max() < 0.2, (confidence,
                                                                             next_right)
assert np.all(next_right[P - 1 : P - 1 + A] > 0.98), next_right
assert np.all(top1[0, 1:] < 0.25), top1[0]
assert top1[1, 0] > 0.65 and top1[1, 0] > top1[1, 1:].max() + 0.2, top1[1]
assert np.all((top1[1, 1:] > 0.15) & (top1[1, 1:] < 0.55)), top1[1]
assert np.all(kl[1, 1:] > 1.5), kl[1]
assert np.all(top1[-1] > 0.98) and np.all(kl[-1] == 0), (top1[-1], kl[-1])
assert kl_tuned[1] < 0.3 * kl_logit[1], (kl_tuned, kl_logit)
assert np.all(tuned_top1[1, 1:] > 0.6) and np.all(tuned_top1[1, 1:] > 2 * top1[1, 1:]), (
    tuned_top1[1], top1[1])
assert np.all(tuned_top1[0, 1:] < 0.3), tuned_top1[0]
assert steps[0] == 0 and solved[0] == 0 and np.all(mean_first[0, 1:] > 2.5), mean_first[0]
assert mean_first[1, 0] < 1 and np.all(mean_first[1, 1:] > 1.5), mean_first[1]
assert mean_first[1, 1] < mean_first[1, 2:].min(), mean_first[1]
assert mean_first[-1, 0] < 1 and mean_first[-1, 1] < 2, mean_first[-1]
assert solved[-1] > solved[0] and (QUICK or solved[-1] > 0.95), solved
assert middle_share > 0.15, text_first
assert 0.10 < text_first[0] < 0.45, text_first
assert np.all(np.diff(text_kl) < 0) and np.all(np.diff(text_top1) > 0), (text_kl, text_top1)
assert q90[0] > 10 and q90[-2] <= 2, q90
assert np.all(tuned_kl_text[:-1] < 0.6 * text_kl[:-1]), (tuned_kl_text, text_kl)
assert tuned_kl_text[0] < 0.3 * text_kl[0], (tuned_kl_text, text_kl)
assert tuned_top1_text[0] > text_top1[0] + 0.15, (tuned_top1_text, text_top1)
assert n_candidates >= 30 and 2 <= example_first <= 4, (n_candidates, example_first)
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/model.py`: `logits_from_resid` (final norm + unembedding: your exercise 1
#   without the log-softmax).
# - `minitf/lens.py`: `logit_lens` and `LensResult` (`.table`, `.plot`, `.rank`, `.prob`,
#   `.kl_to_final`, `.first_top1_layer`) for one sequence; `lens_log_probs`,
#   `first_top1_layers` for batches (and, above, for snapshots during training).
# - `minitf/tuned_lens.py`: `TunedLens`, `train_tuned_lens`, `kl_per_layer`,
#   `lens_kl_per_layer`, `plot_lens_comparison`.
# - `minitf/train.py`: `train(..., callback=...)` sees the parameters after every step.
# - `minitf/lens.py`: `lens_depth` (rank and KL of the final prediction, per row, for
#   many sequences at once; `LensDepth.first_top1`, the prediction depth).
# - `minitf lens CKPT TEXT`: the lens table from the command line.
