# %% [markdown]
# # Lesson 14: New tokens
#
# **Goal:** give a trained model a token it has never seen, by adding one row to its
# embedding and one to its unembedding, starting those rows from tokens it already knows,
# and training only them; then grow the whole residual stream without changing a prediction.
#
# A model's vocabulary is fixed when it is trained, but the world keeps making words (and
# chat templates keep making special tokens). A token is just two rows of numbers: its
# *embedding* row (how the model reads it) and its *unembedding* row (how strongly each
# residual vector predicts it). Adding a token means adding rows; the question is what
# numbers to put in them. See *embedding / unembedding*, *new-token initialization* and
# *frozen parameters* in the [glossary](../docs/glossary.md).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from minitf import course, surgery
from minitf.course.check import check_here
from minitf.model import LN_EPS, Config, forward, init_params, layer_norm
from minitf.sample import generate
from minitf.words import WordTokenizer

course.setup_matplotlib()
QUICK = course.quick_mode()
LENGTH = 5  # digits per sort problem
BASE_STEPS = 250 if QUICK else 600  # training steps of the sorting model (cached)
MAX_STEPS = 120 if QUICK else 300  # fine-tuning budget for the new token
SEEDS = [0] if QUICK else [0, 1, 2]  # fine-tuning runs per init
TARGET = 0.9  # exact match on problems with the new token that counts as "learned"
LR = 3e-3  # fine-tuning learning rate (constant, Adam)
forward_jit = jax.jit(forward, static_argnums=2)  # (params, tokens, config) -> logits

# %% [markdown]
# ## A model that sorts digits
#
# The patient: a two-layer model trained to sort five digits (`47210=01247`), one token
# per digit plus `=`. `course.trained_model` trains it once and keeps it in a cache.
# Its vocabulary is `V = 11` tokens, so `embed` and `unembed` are `(11, 64)`.

# %%
params, config, task = course.trained_model("sort", steps=BASE_STEPS, length=LENGTH)
base_exact = task.evaluate(params, config, n=500)
print(f"exact match on held-out problems: {base_exact:.3f}")
print("embed", params["embed"].shape, " unembed", params["unembed"].shape,
      " vocabulary:", task.tokenizer.chars)  # fmt: skip

# %% [markdown]
# ## A new token: `h`, "four and a half"
#
# We add one token, `h`, that means 4.5: it sorts between `4` and `5`, so `4h21h=`
# should be answered `124hh`. The model has never seen it; it must learn where `h` goes.
# First the tokenizer: `with_tokens` keeps every old id and gives `h` the next one, 11
# (`surgery.add_tokens` below does this for us too).

# %%
tokenizer_h = task.tokenizer.with_tokens(["h"])
H_ID = 11  # new tokens come after the old ones: h's id is the old vocabulary size
assert H_ID == task.tokenizer.vocab_size == tokenizer_h.vocab_size - 1
print("'4h21h=' ->", tokenizer_h.encode("4h21h="))


def problems_with_h(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort problems in which each digit is `h` (4.5) with probability 1/4, at least one.

    -> tokens (n, 2L+1) and loss_mask (n, 2L+1), laid out like `minitf.tasks` batches.
    """
    values = rng.integers(0, 10, (n, LENGTH)).astype(float)  # (n, L)
    is_h = rng.random((n, LENGTH)) < 0.25  # (n, L)
    is_h[np.arange(n), rng.integers(0, LENGTH, n)] = True  # (n, L): at least one h
    values = np.where(is_h, 4.5, values)  # (n, L)
    ids = np.where(is_h, H_ID, values).astype(np.int32)  # (n, L)
    answer = np.take_along_axis(ids, np.argsort(values, axis=1, kind="stable"), 1)  # (n, L)
    equals = np.full((n, 1), task.tokenizer.encode("=")[0], np.int32)  # (n, 1)
    tokens = np.concatenate([ids, equals, answer], axis=1)  # (n, 2L+1)
    position = np.arange(tokens.shape[1])  # (2L+1,)
    scored = (position >= LENGTH) & (position < tokens.shape[1] - 1)  # (2L+1,)
    return tokens, np.broadcast_to(scored[None], tokens.shape).copy()


def batches_with_h(seed: int, batch_size: int = 64):
    """Endless training batches of problems with h, as `surgery.finetune` takes them."""
    rng = np.random.default_rng(seed)
    while True:
        yield problems_with_h(rng, batch_size)


test_tokens, _ = problems_with_h(np.random.default_rng(10**6), 256)  # (256, 2L+1)
test_prompts, test_answers = test_tokens[:, : LENGTH + 1], test_tokens[:, LENGTH + 1 :]
print("a problem with h:", tokenizer_h.decode(test_tokens[0]))

# %% [markdown]
# ## Where the new rows start
#
# Three common choices for the new rows (of `embed`, and of `unembed` unless tied):
#
# - **mean**: the average of all existing rows. The new token's logit is then the average
#   of the other logits, and since `exp` is convex (Jensen's inequality) its probability
#   is at most `1/V`: the model's old predictions barely move.
# - **random**: `N(0, 0.02)`, what `init_params` gives every row. Its logit is noise.
# - **a combination of tokens it resembles**. A new word `monkeyhat` can start as
#   `0.5 * monkey + 0.5 * hat`: the model already knows what those mean. Here, `h` is
#   literally halfway between `4` and `5`, so `0.5 * '4' + 0.5 * '5'`.
#
# The first and the last are both weighted sums of existing rows.
#
# ### Exercise 1: `add_embedding_row`
# Given a `(V, D)` matrix and a `(V,)` vector of weights, return the `(V + 1, D)` matrix
# whose last row is `sum_i weights[i] * rows[i]` and whose other rows are the old ones.

# %%
def add_embedding_row(embed: jax.Array, weights: jax.Array) -> jax.Array:
    """Append one row that mixes the existing rows. [V, D], [V] -> [V + 1, D]"""
    ### BEGIN SOLUTION
    new_row = jnp.asarray(weights, embed.dtype) @ embed  # (D,): sum_i w_i * row_i
    return jnp.concatenate([embed, new_row[None]], axis=0)  # (V + 1, D)
    ### END SOLUTION


# %%
check_here(14, globals(), "add_embedding_row")

# %% [markdown]
# `surgery.add_tokens` does this for `embed` and `unembed` at once, takes the mix as
# `{token: weight}`, and extends the tokenizer. On a word-level toy vocabulary
# (`minitf.words.WordTokenizer`, one token per word) the monkey-and-hat example reads:

# %%
words = WordTokenizer(["the", "monkey", "wears", "a", "hat", "."])
toy_config = Config(vocab_size=words.vocab_size, n_layer=1, n_head=2, d_model=8, d_mlp=16,
                    max_len=8)  # fmt: skip
# random numbers of the right shapes (init_params' shapes, without compiling it)
shapes = jax.eval_shape(lambda: init_params(toy_config, jax.random.key(0)))
rng = np.random.default_rng(0)
toy_params = jax.tree.map(lambda x: 0.02 * rng.standard_normal(x.shape, np.float32), shapes)
grown, grown_config, grown_words = surgery.add_tokens(
    toy_params, toy_config, words, ["monkeyhat"], {"monkey": 0.5, "hat": 0.5}
)
print("vocabulary:", grown_words.words)
print("'the monkey wears a monkeyhat' ->", grown_words.encode("the monkey wears a monkeyhat"))
mix = 0.5 * jax.nn.one_hot(words.ids["monkey"], words.vocab_size) + 0.5 * jax.nn.one_hot(
    words.ids["hat"], words.vocab_size)  # (V,)  # fmt: skip
print("the same row as add_embedding_row:",
      bool(jnp.allclose(grown["embed"], add_embedding_row(toy_params["embed"], mix))))

# %% [markdown]
# Now the sorting model gets `h` with each init. Adding rows never changes the old
# tokens' logits (their rows are untouched), so on ordinary problems (no `h` anywhere)
# the only change is the probability the model now gives to `h`. The KL divergence from
# the old predictions is then exactly `-log(1 - p(h))` per position.

# %%
INITS = {"mean": "mean", "random": "random", "0.5*'4' + 0.5*'5'": {"4": 0.5, "5": 0.5}}
ordinary_prompts, ordinary_answers = task.problems(np.random.default_rng(1), 200, "test")
ordinary = np.concatenate([ordinary_prompts, ordinary_answers], axis=1)  # (200, 2L+1)
start = {}
for name, init in INITS.items():
    new_params, new_config, _ = surgery.add_tokens(
        params, config, task.tokenizer, ["h"], init, key=jax.random.key(0)
    )
    p_h = jax.nn.softmax(forward_jit(new_params, ordinary, new_config))[..., H_ID]  # (200, T)
    kl = -jnp.log1p(-p_h)  # (200, T): KL(old || new) per position, in nats
    start[name] = {"p_h_max": float(p_h.max()), "kl_mean": float(kl.mean())}
    print(f"{name:>18}: max p(h) on ordinary problems {float(p_h.max()):.2e}, "
          f"mean KL {float(kl.mean()):.2e} nats")  # fmt: skip
print(f"the mean init's bound: p(h) <= 1/V = {1 / config.vocab_size:.3f}")

# %% [markdown]
# The mean init keeps its promise. The combination costs more: `h`'s unembedding row is
# the average of `4`'s and `5`'s, so wherever the model predicts a `4` or a `5`, `h` gets
# a good share too. That is the price of starting where the meaning is.

# %% [markdown]
# ## Teaching only the new rows
#
# The rest of the model already works; we only want it to learn `h`. So we train on
# problems containing `h` and let only row 11 of `embed` and `unembed` change: every other
# number stays *bit for bit* what it was. `surgery.finetune(..., only_rows=[11])` does it
# by zeroing the update of every other row, after Adam: AdamW's weight decay would
# otherwise shrink the frozen rows too.
#
# ### Exercise 2: `keep_only_rows`
# Given a `(V, D)` update and a list of row ids, return the update with every other row
# set to zero.

# %%
def keep_only_rows(update: jax.Array, rows: list[int]) -> jax.Array:
    """Zero every row of a (V, D) update except `rows`. [V, D] -> [V, D]"""
    ### BEGIN SOLUTION
    keep = jnp.zeros((update.shape[0], 1), bool).at[jnp.asarray(rows)].set(True)  # (V, 1)
    return jnp.where(keep, update, 0.0)  # (V, D)
    ### END SOLUTION


# %%
check_here(14, globals(), "keep_only_rows")

# %% [markdown]
# Now fine-tune `h`'s rows from each init, and count the steps until greedy answers are
# fully right on 90% of held-out problems with `h` (checked every 10 steps; a run that
# does not get there within `MAX_STEPS` counts as `MAX_STEPS`).

# %%
curves, steps_to_learn, after_20, tuned = {}, {n: [] for n in INITS}, {n: [] for n in INITS}, {}
for name, init in INITS.items():
    for seed in SEEDS:
        start_params, new_config, _ = surgery.add_tokens(
            params, config, task.tokenizer, ["h"], init, key=jax.random.key(seed)
        )
        curve: tuple[list[int], list[float]] = ([], [])

        def learned(step: int, p: dict, new_config=new_config, curve=curve) -> bool:
            predicted = generate(p, new_config, test_prompts, LENGTH, temperature=0)[:, -LENGTH:]
            accuracy = float(np.all(np.asarray(predicted) == test_answers, axis=1).mean())
            curve[0].append(step)
            curve[1].append(accuracy)
            return accuracy >= TARGET

        result = surgery.finetune(start_params, new_config, batches_with_h(seed), lr=LR,
                                  steps=MAX_STEPS, only_rows=[H_ID], callback=learned)  # fmt: skip
        steps_to_learn[name].append(result.steps if curve[1][-1] >= TARGET else MAX_STEPS)
        after_20[name].append(curve[1][min(2, len(curve[1]) - 1)])  # checks at 0, 10, 20
        if seed == SEEDS[0]:
            curves[name], tuned[name] = curve, (start_params, result.params)
    print(f"{name:>18}: exact match after 20 steps {after_20[name]}, "
          f"steps to {TARGET:.0%}: {steps_to_learn[name]}")  # fmt: skip

# %% [markdown]
# Did anything but row 11 move? Compare every number of the fine-tuned model with the
# model we started from.

# %%
before, after = tuned["0.5*'4' + 0.5*'5'"]
changed_elsewhere, changed_new = 0, 0
for name in before:
    old_leaves, new_leaves = jax.tree.leaves(before[name]), jax.tree.leaves(after[name])
    for old, new in zip(old_leaves, new_leaves, strict=True):
        diff = np.asarray(old) != np.asarray(new)  # same shape, elementwise
        if name in ("embed", "unembed"):
            changed_new += int(diff[H_ID].sum())
            diff = diff[:H_ID]
        changed_elsewhere += int(diff.sum())
print(f"numbers changed in h's rows: {changed_new}; anywhere else: {changed_elsewhere}")

fig, (left, right) = plt.subplots(1, 2, figsize=course.FIGSIZE)
for i, (name, (steps, accuracy)) in enumerate(curves.items()):
    left.plot(steps, accuracy, marker=".", color=f"C{i}", label=name)
    right.bar(i, np.mean(steps_to_learn[name]), color=f"C{i}", alpha=0.5)
    right.scatter([i] * len(SEEDS), steps_to_learn[name], color=f"C{i}", zorder=3)
left.axhline(TARGET, color="gray", linestyle="--", linewidth=0.8)
left.set_xlabel("fine-tuning step (only h's rows train)")
left.set_ylabel("exact match, problems with h")
left.legend(fontsize=8)
right.set_xticks(range(len(INITS)), list(INITS), fontsize=8)
right.set_ylabel(f"steps to {TARGET:.0%} (dots: seeds; {MAX_STEPS}: not reached)")
fig.suptitle("Starting h between '4' and '5' (what it means) beats the mean or a random row")
course.save_figure(fig, "14_new_token_init.png")

# %% [markdown]
# ## The extreme option: a wider residual stream
#
# New tokens only add rows. Sometimes one wants more room everywhere: a wider `d_model`,
# then more training. Every matrix that reads or writes the stream grows. The simplest
# widening pads every matrix with zeros, so the new dimensions start empty:
# `surgery.widen(..., preserve=False)`. It is *not* enough to keep the model's output:
# every layer norm computes its mean and variance over all `D'` entries, and the zeros
# pull both down, so every normalized vector comes out different.
#
# The fix works on the two statistics. The mean: centre every vector that is written
# into the stream first (every reader is a layer norm, which subtracts the mean anyway,
# so this changes nothing), and the padded vector's mean is still 0. The variance: with
# mean 0, the `D' - D` zeros divide the variance by `D' / D`, so the normalized vector
# comes out `sqrt(D' / D)` times too large; shrink the norm's gain by `sqrt(D / D')` to
# undo it. The new dimensions get gain 1 and bias 0: they normalize to exactly 0.
#
# ### Exercise 3: `widen_for_layer_norm`
# Do it for residual vectors `x` `(..., D)` and one layer norm (`scale`, `bias`, each
# `(D,)`): return `(x', scale', bias')` with `x'` `(..., D')` and the new `scale'`, `bias'`
# `(D',)`, such that `model.layer_norm(x', {"scale": scale', "bias": bias'})` equals the
# old norm's output in its first `D` entries and is 0 in the others.

# %%
def widen_for_layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array,
                         new_d: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Widen vectors and a layer norm so the norm's output is kept. [..., D], [D], [D] ->
    [..., D'], [D'], [D']"""
    ### BEGIN SOLUTION
    D = x.shape[-1]
    centred = x - x.mean(axis=-1, keepdims=True)  # (..., D): mean 0, the norm's output unchanged
    padding = [(0, 0)] * (x.ndim - 1) + [(0, new_d - D)]
    wide_x = jnp.pad(centred, padding)  # (..., D'): zeros keep the mean at 0
    wide_scale = jnp.concatenate([scale * jnp.sqrt(D / new_d), jnp.ones(new_d - D)])  # (D',)
    wide_bias = jnp.concatenate([bias, jnp.zeros(new_d - D)])  # (D',)
    return wide_x, wide_scale, wide_bias
    ### END SOLUTION


# %%
check_here(14, globals(), "widen_for_layer_norm")

# %% [markdown]
# On the sorting model's own token embeddings, read by block 0's first norm:

# %%
ln1 = params["blocks"][0]["ln1"]
wide_x, wide_scale, wide_bias = widen_for_layer_norm(params["embed"], ln1["scale"],
                                                     ln1["bias"], 96)  # (V, 96), (96,), (96,)
normed_before = layer_norm(params["embed"], ln1)  # (V, 64)
normed_after = layer_norm(wide_x, {"scale": wide_scale, "bias": wide_bias})  # (V, 96)
ln_gap = float(jnp.abs(normed_after[:, :64] - normed_before).max())
ln_new = float(jnp.abs(normed_after[:, 64:]).max())
# the only difference is the norm's epsilon, now added to a variance D/D' times smaller:
# the old norm with epsilon * D'/D gives the widened numbers
embed = params["embed"]  # (V, 64)
centred = embed - embed.mean(-1, keepdims=True)  # (V, 64)
eps_scaled = centred / jnp.sqrt((centred**2).mean(-1, keepdims=True) + LN_EPS * 96 / 64)
eps_gap = float(jnp.abs(normed_after[:, :64] - (eps_scaled * ln1["scale"] + ln1["bias"])).max())
print(f"normed embeddings after widening: old dimensions within {ln_gap:.1e} (the same as "
      f"the old norm with epsilon x 96/64 to {eps_gap:.1e}), new dimensions at most "
      f"{ln_new:.1e}")

# %% [markdown]
# `surgery.widen(params, config, D')` (`preserve=True`, the default) does this for the
# whole model: it centres every writer (embedding rows, position rows, the attention's
# and the MLP's output weights and biases), pads every matrix, and rescales every norm's
# gain. Here is the sorting model widened from 64 to 96 both ways:

# %%
WIDE = 96
ordinary_logits = forward_jit(params, ordinary, config)  # (200, T, V)
widened = {"zero padding": surgery.widen(params, config, WIDE, preserve=False),
           "widen (preserve)": surgery.widen(params, config, WIDE)}  # fmt: skip
widen_stats, widen_diffs = {}, {}
for name, (wide_params, wide_config) in widened.items():
    wide_logits = forward_jit(wide_params, ordinary, wide_config)  # (200, T, V)
    old_lp, new_lp = jax.nn.log_softmax(ordinary_logits), jax.nn.log_softmax(wide_logits)
    kl = (jnp.exp(old_lp) * (old_lp - new_lp)).sum(-1)  # (200, T)
    widen_diffs[name] = np.abs(np.asarray(wide_logits - ordinary_logits)).ravel()
    widen_stats[name] = {
        "max_diff": float(widen_diffs[name].max()),
        "kl_mean": float(kl.mean()),
        "exact": task.evaluate(wide_params, wide_config, n=500),
    }
    print(f"{name:>16}: d_model {config.d_model} -> {wide_config.d_model}, max |logit change| "
          f"{widen_stats[name]['max_diff']:.1e}, mean KL {widen_stats[name]['kl_mean']:.1e}, "
          f"exact match {widen_stats[name]['exact']:.3f}")  # fmt: skip

fig, ax = plt.subplots(figsize=course.FIGSIZE)
bins = np.logspace(-7, 1.5, 35)
for i, (name, diffs) in enumerate(widen_diffs.items()):
    ax.hist(np.maximum(diffs, 1e-7), bins=bins, alpha=0.6, color=f"C{i}", label=name)
ax.set_xscale("log")
ax.set_xlabel(f"|logit after widening {config.d_model} -> {WIDE} - logit before|")
ax.set_ylabel("count (every logit of 200 problems)")
ax.legend()
ax.set_title("Zero padding moves every logit; widen(preserve=True) barely does")
course.save_figure(fig, "14_widen.png")

# %% [markdown]
# What `preserve=True` leaves is the epsilon: `sqrt(var + eps)` over `D'` entries is
# `sqrt(var * D / D' + eps)`, so the relative error is about `eps (D'/D - 1) / (2 var)`.
# It is largest where the stream is small (a trained model's embeddings often are), yet
# far below anything that changes an answer. `tests/test_surgery.py` sets `eps = 0` and
# gets the old logits back to float32 rounding.
#
# ## Does fine-tuning use the new room?
#
# Not by itself. Every new dimension starts as exactly the same thing (zero everywhere),
# so every new dimension gets exactly the same gradient, and after any amount of
# fine-tuning they are still identical: 32 new dimensions that act as one. The same goes
# for the new slots of each head. The symmetry has to be broken at the start, without
# changing the output: `surgery.widen(..., noise_std=0.02, key=...)` draws random values
# only for entries that *read* something still zero (the rows of `w_qkv`, `w_in` and
# `unembed` that read the new dimensions, which the norms keep at 0, and the new query
# and value slots, whose keys and output rows are 0). Below, both widenings fine-tune
# *every* parameter (`finetune(..., only_rows=None)`) for `WIDE_STEPS` steps on sorting
# problems. We measure the new dimensions by the singular values of the embedding's new
# columns `embed[:, 64:]` (how many independent directions they hold, out of at most
# `V = 11`) and the largest entry of the attention output rows of the new head slots.

# %%
WIDE_STEPS = 60
widen_runs = {"zeros (noise_std=0)": 0.0, "random readers (noise_std=0.02)": 0.02}
spectra, slot_writes, wide_exact, noise_logit_gap, identical = {}, {}, {}, {}, {}
old_d = config.d_model
# each head widens from K = 16 to K' = 24 slots; slots 16..23 of every head are new
new_slots = np.arange(WIDE) % (WIDE // config.n_head) >= config.d_head  # (D',)


def sort_batches(seed: int, batch_size: int = 64):
    """Endless training batches of ordinary sort problems, as `surgery.finetune` takes them."""
    rng = np.random.default_rng(seed)
    while True:
        yield task.batch(rng, batch_size)


for name, noise in widen_runs.items():
    wide_params, wide_config = surgery.widen(params, config, WIDE, noise_std=noise,
                                             key=jax.random.key(0))  # fmt: skip
    noise_logit_gap[name] = float(jnp.abs(forward_jit(wide_params, ordinary, wide_config)
                                          - forward_jit(widened["widen (preserve)"][0], ordinary,
                                                        wide_config)).max())  # fmt: skip
    tuned_wide = surgery.finetune(wide_params, wide_config, sort_batches(0), steps=WIDE_STEPS,
                                  lr=1e-3).params  # fmt: skip
    new_columns = np.asarray(tuned_wide["embed"])[:, old_d:]  # (V, D' - D)
    identical[name] = bool(np.all(new_columns == new_columns[:, :1]))
    spectra[name] = np.linalg.svd(new_columns, compute_uv=False)  # (V,)
    w_out = np.asarray(tuned_wide["blocks"][0]["attn"]["w_out"])  # (D', D'), rows: head slots
    slot_writes[name] = float(np.abs(w_out[new_slots]).max())
    wide_exact[name] = task.evaluate(tuned_wide, wide_config, n=500)
    independent = int((spectra[name] > 1e-3 * spectra[name][0]).sum())
    print(f"{name:>32}: output vs plain widen {noise_logit_gap[name]:.1e}; after {WIDE_STEPS} "
          f"steps: {independent} independent new directions in embed, new head slots write "
          f"up to {slot_writes[name]:.1e}, exact match {wide_exact[name]:.3f}")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
for name, spectrum in spectra.items():
    ax.semilogy(range(1, len(spectrum) + 1), np.maximum(spectrum, 1e-12), marker="o", label=name)
ax.set_xlabel("singular value number")
ax.set_ylabel("singular value of embed[:, 64:]")
ax.legend()
ax.set_title(f"After {WIDE_STEPS} steps of fine-tuning: zeros stay one direction, noise "
             "spreads out", fontsize=9)  # fmt: skip
course.save_figure(fig, "14_widen_symmetry.png")

# %% [markdown]
# ## What you should see
#
# | quantity | value |
# |---|---|
# | sorting model, exact match | about 1.0 (at least 0.95) |
# | mean init: max p(h) on ordinary problems | 0.002-0.011, at most 1/V = 0.091 |
# | mean init: mean KL from the old predictions | below 1e-3, at most log(1 + 1/V) = 0.087 nats |
# | `0.5*'4' + 0.5*'5'` init: mean KL | larger than the mean init's (5e-4 to 4e-3 nats) |
# | exact match after 20 steps | `0.5*'4' + 0.5*'5'`: 0.45-0.9 (> 0.3); mean and random: 0 |
# | steps to 90% exact match | `0.5*'4' + 0.5*'5'` fewest (30-60 full, 70 quick) |
# | numbers changed outside h's rows by fine-tuning | exactly 0 |
# | widen with zero padding: mean KL | 0.15-0.3 nats, and some wrong answers |
# | widen (preserve): max logit change, mean KL | below 0.3 (about 0.1), below 1e-4 nats |
# | exact match after widening (preserve) | unchanged |
# | your `widen_for_layer_norm`, normed embeddings: old dims | kept up to epsilon (< 1e-5) |
# | ... new dims | 0 (< 1e-4) |
# | widen with noise_std=0.02 vs without: logits | the same (within 1e-4) |
# | fine-tuning everything 60 steps, zeros: new embed columns | all identical (1 direction) |
# | ... zeros: the new head slots' output rows | exactly 0 |
# | ... noise: independent new directions / new head slots' output rows | at least 8 / non-zero |
# | ... exact match after fine-tuning, both | at least 0.95 |
#
# Measured in fresh runs, full mode with the sorting model trained from seeds 0, 1 and 2
# (the lesson uses 0) and quick mode; checked below (quick mode trains less and uses one
# seed; the same bounds hold).

# %%
n_vocab, combo = config.vocab_size, "0.5*'4' + 0.5*'5'"
assert base_exact >= 0.95
assert start["mean"]["p_h_max"] <= 1 / n_vocab + 1e-6
assert start["mean"]["kl_mean"] <= np.log1p(1 / n_vocab)
assert start[combo]["kl_mean"] > start["mean"]["kl_mean"]
assert min(after_20[combo]) >= 0.3 and max(after_20["mean"] + after_20["random"]) <= 0.1
mean_steps = {name: float(np.mean(found)) for name, found in steps_to_learn.items()}
assert mean_steps[combo] <= min(mean_steps["mean"], mean_steps["random"])
assert changed_elsewhere == 0 and changed_new == 2 * config.d_model
assert widen_stats["zero padding"]["kl_mean"] > 1e-2
assert widen_stats["widen (preserve)"]["max_diff"] < 0.3
assert widen_stats["widen (preserve)"]["kl_mean"] < 1e-4
assert widen_stats["widen (preserve)"]["exact"] == base_exact
assert eps_gap < 1e-5 and ln_gap < 0.05 and ln_new < 1e-4, (eps_gap, ln_gap, ln_new)
zeros, noisy = widen_runs
assert max(noise_logit_gap.values()) < 1e-4, noise_logit_gap
assert identical[zeros] and slot_writes[zeros] == 0 and not identical[noisy]
assert (spectra[noisy] > 1e-3 * spectra[noisy][0]).sum() >= 8 and slot_writes[noisy] > 1e-3
assert min(wide_exact.values()) >= 0.95, wide_exact
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/surgery.py`: `add_tokens` (the inits: "mean", "random", `{token: weight}`),
#   `freeze_all_but_rows` and `finetune` (`only_rows`: the update masked before and after
#   the optimizer), `widen` (centring the writers, rescaling the norms' gains, padding
#   heads; `noise_std` for random readers that break the symmetry).
# - `minitf/words.py`, `minitf/chars.py`, `minitf/bpe.py`: each tokenizer's `with_tokens`.
# - `tests/test_surgery.py`: the Jensen bound, bit-identical frozen rows, and the proof
#   that widening's remaining error is the layer norms' epsilon.
# - Lesson 15 uses these tools to give a model a token it is missing.
