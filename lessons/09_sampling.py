# %% [markdown]
# # Lesson 9: Sampling
#
# **Goal:** turn a model's logits into tokens with greedy decoding, temperature, top-k and
# top-p sampling, measure what each rule costs a trained model in accuracy, and make
# generation fast with a KV cache that changes no token.
#
# A language model only ever predicts a distribution over the next token. Generation is
# a loop: pick a token from that distribution, append it, run the model again. How the
# token is picked is a choice the model doesn't make. See
# [temperature](../docs/glossary.md#temperature),
# [top-k / top-p](../docs/glossary.md#top-k--top-p-sampling) and
# [KV cache](../docs/glossary.md#kv-cache) in the glossary.

# %%
import functools
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from minitf import course, model, sample, text
from minitf.course.check import check_here
from minitf.text import validation_windows

course.setup_matplotlib()
QUICK = course.quick_mode()
N_PROBLEMS = 2000  # held-out addition problems to sample answers for
# made-up logits over 12 tokens (as many as the addition model has), most likely first
LOGITS = [3.0, 2.2, 1.6, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0]

# %% [markdown]
# ## A trained model's next-token distributions
#
# The 3-digit addition model of lesson 4 (trained once, then cached). For each held-out
# problem `abc+def=` we run the model on the problem *with* its right answer and keep the
# logits at the four positions that predict an answer digit: the distribution the model
# samples from at each step when the digits before are right.

# %%
params, config, task = course.trained_model("addition")
P, A = task.prompt_len, task.answer_len
prompts, answers = task.problems(np.random.default_rng(0), N_PROBLEMS, "test")  # (N, P), (N, A)
problems = jnp.asarray(np.concatenate([prompts, answers], axis=1))  # (N, P + A)
logits_all = jax.jit(model.forward, static_argnames="config")(params, problems, config)
answer_logits = logits_all[:, P - 1 : P + A - 1]  # (N, A, V): predictions of the answer digits
probs = jax.nn.softmax(answer_logits, axis=-1)  # (N, A, V)
print("problem:", task.tokenizer.decode(problems[0]))
print("p(right digit) at each answer position:",
      np.round(np.take_along_axis(np.asarray(probs[0]), answers[0][:, None], -1)[:, 0], 4))

# %% [markdown]
# ## Greedy and temperature
#
# *Greedy* decoding takes the most likely token every time: deterministic, and often
# dull or repetitive on text. *Sampling* draws from the distribution. *Temperature* `T`
# reshapes it first: probabilities `softmax(logits / T)`. Below 1 the differences between
# logits grow and the distribution sharpens; above 1 it flattens; as `T` goes to 0 all
# the probability lands on the largest logit, so greedy is temperature 0.
#
# ### Exercise 1: `apply_temperature`
# Return the probabilities of sampling each token at `temperature`, for logits of shape
# `(..., V)` (each row on its own). `temperature == 0` means greedy: probability 1 on the
# largest logit of each row, 0 elsewhere.

# %%
def apply_temperature(logits: jax.Array, temperature: float) -> jax.Array:
    """Sampling probabilities at a temperature; 0 is greedy (one-hot). [..., V] -> [..., V]"""
    ### BEGIN SOLUTION
    logits = jnp.asarray(logits, dtype=jnp.float32)
    if temperature == 0:
        return jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1])  # (..., V)
    return jax.nn.softmax(logits / temperature, axis=-1)  # (..., V)
    ### END SOLUTION


# %%
check_here(9, globals(), "apply_temperature")

# %% [markdown]
# How spread out a distribution is can be read off its *entropy*, `-sum p log2 p` bits:
# 0 for a sure thing, `log2 V` for all `V` tokens equally likely. The addition model is
# sure of itself (its distributions have almost no entropy at `T = 1`); heat it up and
# it becomes as unsure as the made-up example.

# %%
def entropy_bits(p: jax.Array) -> jax.Array:
    """Entropy of each row of probabilities, in bits (0 log 0 counts as 0). [..., V] -> [...]"""
    return -jnp.sum(jnp.where(p > 0, p * jnp.log2(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


@jax.jit
def mean_entropy(logits: jax.Array, temperature: float) -> jax.Array:
    """Entropy of softmax(logits / T), averaged over all rows. [..., V] -> a number"""
    return entropy_bits(jax.nn.softmax(logits / temperature, axis=-1)).mean()


temperatures = np.geomspace(0.05, 20, 40)  # (n_T,)
made_up = jnp.asarray(LOGITS)  # (V,)
entropy_made_up = np.array([mean_entropy(made_up, float(t)) for t in temperatures])
entropy_model = np.array([mean_entropy(answer_logits, float(t)) for t in temperatures])

fig, (ax_bars, ax_entropy) = plt.subplots(1, 2, figsize=course.FIGSIZE)
for i, t in enumerate([0.5, 1.0, 2.0]):
    ax_bars.bar(np.arange(len(LOGITS)) + (i - 1) * 0.27, jax.nn.softmax(made_up / t),
                width=0.27, label=f"T = {t}")
ax_bars.set_xticks(range(len(LOGITS)))
ax_bars.set_xlabel("token (made-up logits, largest first)")
ax_bars.set_ylabel("probability")
ax_bars.legend()
ax_bars.set_title("softmax(logits / T)", fontsize=9)
ax_entropy.semilogx(temperatures, entropy_made_up, label="made-up logits")
ax_entropy.semilogx(temperatures, entropy_model, label="addition model (answer digits)")
ax_entropy.axhline(np.log2(len(LOGITS)), color="gray", ls="--", lw=0.8, label="log2 V")
ax_entropy.set_xlabel("temperature T")
ax_entropy.set_ylabel("entropy (bits)")
ax_entropy.legend(fontsize=8)
ax_entropy.set_title("entropy: 0 as T -> 0 (greedy), log2 V as T grows", fontsize=8)
fig.suptitle("Temperature sharpens (T < 1) or flattens (T > 1) the next-token distribution")
course.save_figure(fig, "09_temperature.png")

# %% [markdown]
# ## Cutting off the tail: top-k and top-p
#
# A distribution over 50,000 tokens has a long tail of tokens that are each unlikely but
# together likely enough to get drawn now and then, and one bad token can derail
# everything after it. Two filters remove the tail before sampling, by setting the
# logits of the removed tokens to `-inf` (probability exactly 0):
#
# - **top-k** keeps the `k` most likely tokens.
# - **top-p** (*nucleus* sampling) keeps the fewest most likely tokens whose
#   probabilities add up to at least `p`: few when the model is sure, many when it isn't.
#
# ### Exercise 2: `top_k_filter`
# Keep the `k` largest logits of each row (shape `(..., V)`) unchanged and set every other
# entry to `-jnp.inf`.

# %%
def top_k_filter(logits: jax.Array, k: int) -> jax.Array:
    """Keep the k largest logits of each row; the rest become -inf. [..., V] -> [..., V]"""
    ### BEGIN SOLUTION
    logits = jnp.asarray(logits)
    kth_largest = jnp.sort(logits, axis=-1)[..., -k][..., None]  # (..., 1)
    return jnp.where(logits >= kth_largest, logits, -jnp.inf)  # (..., V)
    ### END SOLUTION


# %% [markdown]
# ### Exercise 3: `top_p_filter`
# Keep the smallest set of most likely tokens whose probabilities (`softmax` of the
# row) add up to at least `p`; set the other logits to `-jnp.inf`. Hint: sort the
# probabilities, most likely first; a token is needed if the tokens *before* it in
# that order add up to less than `p`. The most likely token is therefore always kept.

# %%
def top_p_filter(logits: jax.Array, p: float) -> jax.Array:
    """Nucleus filter: the fewest most likely tokens reaching mass p. [..., V] -> [..., V]"""
    ### BEGIN SOLUTION
    logits = jnp.asarray(logits)
    order = jnp.argsort(-logits, axis=-1)  # (..., V): token ids, most likely first
    sorted_probs = jnp.take_along_axis(jax.nn.softmax(logits, axis=-1), order, axis=-1)
    mass_before = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs  # (..., V)
    needed = mass_before < p  # (..., V), in sorted order
    rank = jnp.argsort(order, axis=-1)  # (..., V): each token's place in the sorted order
    keep = jnp.take_along_axis(needed, rank, axis=-1)  # (..., V), back in token order
    return jnp.where(keep, logits, -jnp.inf)  # (..., V)
    ### END SOLUTION


# %%
check_here(9, globals(), "top_k_filter")
check_here(9, globals(), "top_p_filter")

# %% [markdown]
# On the made-up logits, top-p keeps more tokens as `p` grows. The addition model's least
# sure prediction is usually a digit that hangs on a chain of carries (see *carry* in the
# glossary); there top-p with `p = 0.9` keeps the two candidates and nothing else.

# %%
print("made-up, kept by top-k (k=3)  :", np.isfinite(sample.filter_top_k(made_up, 3)).sum())
for p in (0.5, 0.9, 0.99):
    print(f"made-up, kept by top-p (p={p}):", np.isfinite(sample.filter_top_p(made_up, p)).sum())
least_sure = np.unravel_index(np.argmax(entropy_bits(probs)), probs.shape[:2])  # (problem, pos)
row = answer_logits[least_sure]  # (V,)
row_probs = np.asarray(jax.nn.softmax(row))  # (V,)
print(f"least sure: {task.tokenizer.decode(problems[least_sure[0]])}, answer digit "
      f"{least_sure[1]}: " + ", ".join(f"p({task.tokenizer.decode([d])}) = {row_probs[d]:.3f}"
                                       for d in np.argsort(-row_probs)[:3]))
print("  kept by top-p (p=0.9):", np.isfinite(sample.filter_top_p(row, 0.9)).sum(), "tokens")

# %% [markdown]
# ## What each rule costs the addition model
#
# An addition problem has one right answer, so here sampling can only hurt. How much?
# We could sample thousands of answers per setting, but there is an exact shortcut:
# a sampled answer is right only if every digit is, and each digit is drawn from the
# distribution given the (right) digits before it. So the chance of a right answer is
# the *product* of the four probabilities of the right digits, all of which one forward
# pass computed above. Filters are applied after the temperature, as `minitf.sample`
# does.

# %%
answers_j = jnp.asarray(answers)  # (N, A)


@functools.partial(jax.jit, static_argnames=("top_k", "top_p"))
def p_right_each(logits: jax.Array, right: jax.Array, temperature: float,
                 top_k: int | None = None, top_p: float | None = None) -> jax.Array:
    """Chance that sampling writes each whole answer right. [N, A, V], [N, A] -> [N]"""
    scaled = logits / temperature  # (N, A, V)
    if top_k is not None:
        scaled = sample.filter_top_k(scaled, top_k)  # (N, A, V)
    if top_p is not None:
        scaled = sample.filter_top_p(scaled, top_p)  # (N, A, V)
    p_digit = jnp.take_along_axis(jax.nn.softmax(scaled, -1), right[..., None], -1)  # (N, A, 1)
    return p_digit[..., 0].prod(axis=-1)  # (N,): right only if every digit is


def p_correct(temperature: float, top_k: int | None = None, top_p: float | None = None) -> float:
    """Chance that sampling writes the whole answer right, averaged over the problems."""
    return float(p_right_each(answer_logits, answers_j, temperature, top_k, top_p).mean())


SETTINGS = {"plain sampling": {}, "top-k, k = 2": {"top_k": 2}, "top-p, p = 0.9": {"top_p": 0.9}}
sweep = np.geomspace(0.1, 5, 12 if QUICK else 30)  # (n_T,)
curves = {name: [p_correct(float(t), **opts) for t in sweep] for name, opts in SETTINGS.items()}
at_2 = {name: p_correct(2.0, **opts) for name, opts in SETTINGS.items()}
print("chance of a right answer at T = 2:", {k: round(v, 3) for k, v in at_2.items()})

# %% [markdown]
# Now real generation with `sample.generate`: greedy (`temperature=0`, no key needed),
# and sampling at `T = 1.5` with an explicit key. The same key gives the same tokens;
# another key gives other ones.

# %%
def exact_match(generated: np.ndarray) -> float:
    return float(np.all(generated[:, P:] == answers, axis=1).mean())


greedy = sample.generate(params, config, prompts, A, temperature=0)  # (N, P + A)
sampled = sample.generate(params, config, prompts, A, temperature=1.5, key=jax.random.key(0))
sampled_again = sample.generate(params, config, prompts, A, temperature=1.5,
                                key=jax.random.key(0))
sampled_other = sample.generate(params, config, prompts, A, temperature=1.5,
                                key=jax.random.key(1))
greedy_acc, sampled_acc = exact_match(greedy), exact_match(sampled)
argmax_right = float(jnp.all(answer_logits.argmax(-1) == answers_j, axis=-1).mean())
predicted_acc = p_correct(1.5)
# the spread of the measured accuracy: each problem is right with its own chance
p_each = p_right_each(answer_logits, answers_j, 1.5)  # (N,)
std_err = float(jnp.sqrt(jnp.sum(p_each * (1 - p_each)))) / N_PROBLEMS
print(f"greedy: exact match {greedy_acc:.3f} (every argmax right: {argmax_right:.3f})")
print(f"T = 1.5: exact match {sampled_acc:.3f}, predicted {predicted_acc:.3f} +- {std_err:.3f}")
print("same key, same tokens:", bool((sampled == sampled_again).all()),
      "| another key, rows that differ:", int((sampled != sampled_other).any(axis=1).sum()))
# top-k with k = 1 keeps only the largest logit: greedy, whatever the temperature
top1_hot = p_correct(3.0, top_k=1)
print(f"top_k=1 at T = 3: chance of a right answer {top1_hot:.3f}, the same as greedy")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
for name, curve in curves.items():
    ax.semilogx(sweep, curve, marker=".", label=name)
ax.errorbar([1.5], [sampled_acc], yerr=[2 * std_err], fmt="kx", capsize=3,
            label="measured: 2000 sampled answers (T = 1.5)")
ax.axhline(greedy_acc, color="gray", ls=":", label="greedy (T = 0)")
ax.set_xlabel("temperature T")
ax.set_ylabel("chance the sampled answer is right")
ax.legend(fontsize=8)
ax.set_title("Sampling the addition model: hotter means more wrong digits;\n"
             "top-k and top-p cut the tail of unlikely digits and keep more answers right",
             fontsize=9)
course.save_figure(fig, "09_sampling_accuracy.png")

# %% [markdown]
# ## The KV cache
#
# Generating `N` tokens naively runs the model on the whole sequence `N` times. But in a
# causal model nothing at position `t` depends on later positions, so the keys and values
# that attention computed for earlier tokens never change. The *KV cache* keeps them:
# one pass over the prompt (the *prefill*) fills it, then each *decode* step runs only
# the newest token, which attends to the cached keys and values. Same numbers, a
# fraction of the work. Here `sample.forward_with_cache` does it step by step on one
# addition problem: the logits match `forward`'s.

# %%
step = jax.jit(sample.forward_with_cache, static_argnames="config")
one_problem = problems[:1]  # (1, P + A)
cache = sample.init_cache(config, batch=1, length=config.max_len)
print("cache: per layer, keys and values of shape (B, L, H, K) =", cache[0]["k"].shape)
step_logits, cache = step(params, config, one_problem[:, :P], cache, 0)  # prefill: (1, P, V)
decoded = [step_logits]
for pos in range(P, P + A - 1):  # decode: one token at a time
    step_logits, cache = step(params, config, one_problem[:, pos : pos + 1], cache, pos)
    decoded.append(step_logits)  # (1, 1, V)
cache_diff = float(jnp.abs(jnp.concatenate(decoded, axis=1) - logits_all[:1, :-1]).max())
print(f"cached logits vs forward: max difference {cache_diff:.1e}")
gpt2_cache = 2 * 12 * 1024 * 768 * 4  # keys and values, 12 layers, 1024 positions, D 768, fp32
print(f"(the price is memory: GPT-2 small's cache for 1024 tokens is {gpt2_cache / 2**20:.0f} MiB)")

# %% [markdown]
# `generate` runs the whole loop inside one compiled call, with the cache
# (`use_cache=True`, the default) or re-running `forward` on the whole sequence at every
# step (`use_cache=False`). On a random model with room for a longer sequence: the same
# tokens, and the speed. The first call of each compiles; we time the calls after it.

# %%
LONG = 128 if QUICK else 256  # prompt + generated tokens
long_config = model.Config(vocab_size=64, n_layer=2, n_head=4, d_model=64, d_mlp=256,
                           max_len=LONG)
# init_params' shapes without running it; numpy draws the numbers, which compiles nothing
shapes = jax.eval_shape(lambda: model.init_params(long_config, jax.random.key(1)))
rng = np.random.default_rng(1)
long_params = jax.tree_util.tree_map_with_path(
    lambda path, leaf: np.ones(leaf.shape, np.float32) if path[-1].key == "scale"  # norms
    else jnp.asarray(rng.normal(0.0, 0.02, leaf.shape), jnp.float32), shapes)
long_prompt = np.arange(8)  # (T0,)
n_new = LONG - len(long_prompt)


def timed_generate(use_cache: bool) -> tuple[np.ndarray, float]:
    """Generated tokens and tokens per second (best of 3 runs, after compiling)."""
    def run() -> np.ndarray:
        return sample.generate(long_params, long_config, long_prompt, n_new, temperature=1.0,
                               key=jax.random.key(3), use_cache=use_cache)

    run()  # compile
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = run()  # a numpy array: the call has finished
        times.append(time.perf_counter() - start)
    return out, n_new / min(times)


with_cache, speed_cached = timed_generate(True)
without_cache, speed_uncached = timed_generate(False)
same_tokens = bool((with_cache == without_cache).all())
speedup = speed_cached / speed_uncached
print(f"{n_new} new tokens: cached {speed_cached:,.0f} tokens/s, uncached "
      f"{speed_uncached:,.0f} tokens/s, {speedup:.1f}x; same tokens: {same_tokens}")

# %% [markdown]
# Without the cache, step `i` redoes the work for all positions (here even the padding
# up to the final length, so that every step has one shape and compiles once); with it,
# step `i` does one position's work. The longer the sequence, the larger the gain.

# %% [markdown]
# ## The same on real text
#
# An addition problem has one right answer, so every rule above can only cost accuracy.
# Text is the other extreme: after `The for` many continuations are fine, and how many
# depends on the position. The course's language model (lesson 8: 6 blocks, BPE with
# 1024 tokens, trained on Python's own docs) on 2048 positions of validation text: how
# spread out is its next-token distribution, and how many tokens does top-p with
# `p = 0.9` keep at each position?

# %%
lm = course.trained_text_model()
text_windows = validation_windows(lm.task.val_ids, lm.task.context, 32, seed=0)  # (32, T+1)
text_logits = jax.jit(model.forward, static_argnames="config")(
    lm.params, jnp.asarray(text_windows[:, :-1]), lm.config).reshape(-1, lm.config.vocab_size)
text_entropy = np.asarray(entropy_bits(jax.nn.softmax(text_logits, axis=-1)))  # (2048,)
addition_entropy = np.asarray(entropy_bits(probs)).ravel()  # (N * A,)
nucleus_text = np.isfinite(np.asarray(sample.filter_top_p(text_logits, 0.9))).sum(-1)  # (2048,)
nucleus_addition = np.isfinite(np.asarray(sample.filter_top_p(answer_logits, 0.9))).sum(-1)
print(f"{'':22}{'entropy (bits): median':>23}{'90%':>6}{'   top-p 0.9 keeps: median':>27}"
      f"{'10%':>5}{'90%':>6}{'one token':>11}")
for name, ent, kept in (("addition answer digits", addition_entropy, nucleus_addition.ravel()),
                        ("validation text", text_entropy, nucleus_text)):
    print(f"{name:22}{np.median(ent):>23.2f}{np.percentile(ent, 90):>6.2f}"
          f"{np.median(kept):>27.0f}{np.percentile(kept, 10):>5.0f}{np.percentile(kept, 90):>6.0f}"
          f"{(kept == 1).mean():>11.0%}")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
bins = np.unique(np.geomspace(1, lm.config.vocab_size, 30).astype(int))
ax.hist(nucleus_text, bins=bins, alpha=0.7, label="language model, validation text")
ax.hist(nucleus_addition.ravel(), bins=bins, alpha=0.7, label="addition model, answer digits")
ax.set_xscale("log")
ax.set_xlabel("tokens kept by top-p, p = 0.9 (log scale)")
ax.set_ylabel("positions")
ax.legend(fontsize=8)
ax.set_title("Top-p adapts: one token where the model is sure, hundreds where it isn't", fontsize=9)
course.save_figure(fig, "09_text_nucleus.png")
plt.close(fig)

# %% [markdown]
# This small model is rarely sure of the next piece of text: at the median position
# top-p 0.9 keeps over a hundred tokens, and there is no position where one token
# holds 90%. (A big model's distributions are much sharper.) Now sample text from the
# prompt `The for statement` at a hot temperature, `T = 1.5`, with and without cutting
# the tail, 32 samples each, and count the share of the words written that are words of
# the training text (lesson 8's *word share*):

# %%
train_words = lm.task.training_words()
text_prompt = np.tile(lm.task.tokenizer.encode(course.TEXT_PROMPT), (32, 1))  # (32, P)
n_text = lm.config.max_len - text_prompt.shape[1]
TEXT_RULES = {"plain, T = 1.5": {}, "top-k 20, T = 1.5": {"top_k": 20},
              "top-p 0.5, T = 1.5": {"top_p": 0.5}, "top-p 0.9, T = 1.5": {"top_p": 0.9}}
text_share = {}
for name, rule in TEXT_RULES.items():
    rows = sample.generate(lm.params, lm.config, text_prompt, n_text, temperature=1.5,
                           key=jax.random.key(2), **rule)  # (32, P + G)
    texts = [lm.task.tokenizer.decode(r[text_prompt.shape[1]:]) for r in rows]
    text_share[name] = text.word_share(texts, train_words)
    print(f"{name:20} word share {text_share[name]:.0%}: {texts[0][:80]!r}")

# %% [markdown]
# Cutting the tail keeps more of the words real: top-k 20 most, top-p 0.5 some. Top-p
# 0.9 hardly changes anything here, because for this model the 90% nucleus is most of
# the vocabulary anyway. Which rule is best depends on how sharp the model is, which is
# why generation settings are tuned per model.

# %% [markdown]
# ## What you should see
#
# | quantity | value |
# |---|---|
# | entropy of the made-up logits: T = 0.05 / T = 20 | about 0 / near log2 12 = 3.58 (> 3.45) |
# | greedy exact match vs "every argmax right" | both about 1 (above 0.97), within 0.003 |
# | chance of a right answer at T = 2: plain / top-k 2 / top-p 0.9 | 0.7-0.9 / more / more still |
# | measured exact match at T = 1.5 vs predicted | within 4 standard errors |
# | same key / another key | identical tokens / different tokens |
# | top-k = 1 | the argmax, at any temperature |
# | cached vs uncached logits and tokens | equal (max diff < 1e-4), identical tokens |
# | KV-cache speedup | above 1 (quick), above 2 (full); 10x or more here |
# | text: median entropy of the next token / addition answers | about 6.6 bits (> 3) / < 0.1 bit |
# | text: tokens top-p 0.9 keeps, median / 90th percentile | about 160 (> 50) / about 250 |
# | addition answers: tokens top-p 0.9 keeps, median | 1 |
# | text, T = 1.5: word share plain / top-k 20 / top-p 0.5 | 62% / 75% (+7 or more) / 70% (more) |
#
# Checked below.

# %%
assert entropy_made_up[0] < 0.01 and entropy_made_up[-1] > 3.45
assert (np.diff(entropy_model) > -1e-6).all()  # rises with T
assert greedy_acc > 0.97 and abs(greedy_acc - argmax_right) <= 0.003
assert 0.5 < at_2["plain sampling"] < at_2["top-k, k = 2"] < at_2["top-p, p = 0.9"]
assert (np.diff(curves["plain sampling"]) < 1e-3).all()  # falls with T
assert abs(sampled_acc - predicted_acc) < 4 * std_err + 1e-3
assert bool((sampled == sampled_again).all()) and bool((sampled != sampled_other).any())
assert abs(top1_hot - argmax_right) < 1e-6
assert cache_diff < 1e-4 and same_tokens
assert speedup > (1.0 if QUICK else 2.0)
assert np.median(text_entropy) > 3 and np.median(addition_entropy) < 0.1
assert np.median(nucleus_text) > 50, np.median(nucleus_text)
assert np.median(nucleus_addition) == 1
plain_share = text_share["plain, T = 1.5"]
assert text_share["top-k 20, T = 1.5"] > plain_share + 0.07, text_share
assert text_share["top-p 0.5, T = 1.5"] > plain_share, text_share
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/sample.py`: `filter_top_k`, `filter_top_p` (exercises 2 and 3),
#   `sample_next` (temperature, then the filters, then `jax.random.categorical`; greedy
#   at temperature 0), `init_cache` and `forward_with_cache` (the KV cache),
#   `generate` (the whole loop in one `jax.jit` call, cached or not).
# - `minitf/tasks.py`: `Task.predict`, which answers with `generate` at temperature 0.
# - `minitf sample CKPT --temperature T --top-k K --top-p P`: the same from the command
#   line; on a text model it writes as many tokens as asked, sliding the window
#   (`sample.generate_long`).
# - `minitf/text.py`: `word_share`, `TextTask.training_words`, `validation_windows`.
