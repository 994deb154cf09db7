# %% [markdown]
# # Lesson 15: When the token doesn't exist
#
# **Goal:** see the lm_head as a nearest-vector lookup, watch a toy model build an answer
# its vocabulary has no token for and snap to the nearest token that exists (the seahorse
# effect), measure it with the logit lens, and fix it by adding the token.
#
# Ask a chatbot for the seahorse emoji and it often answers with a horse or a tropical
# fish, then apologizes and tries again. Unicode has no seahorse emoji. The model is not
# looking anything up: its middle layers build something like "seahorse + emoji", and
# the last step, the *lm_head* (the unembedding), can only answer with one of the tokens
# it has. It picks the one whose row points most in the same direction. Here the same
# thing happens in a toy language small enough to watch. See *unembedding*, *logit
# lens*, *seahorse effect* and *KL divergence* in the [glossary](../docs/glossary.md).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from minitf import course, surgery
from minitf.course import seahorse
from minitf.course.check import check_here
from minitf.lens import layer_names, logit_lens
from minitf.model import forward, layer_norm, unembed_matrix

course.setup_matplotlib()
QUICK = course.quick_mode()
# training steps of the toy language model (cached), the same in quick and full mode
BASE_STEPS = 300
MAX_STEPS = 100 if QUICK else 300  # fine-tuning budget for the missing emoji
CHECK_EVERY = 5  # fine-tuning steps between checks of the answer
# (params, tokens, config, cache=False) -> logits, (logits, activations) with cache=True
forward_jit = jax.jit(forward, static_argnames=("config", "cache"))

# %% [markdown]
# ## The lm_head is a lookup by dot product
#
# The model's last residual vector `x` (after the final layer norm) becomes one logit per
# token: `logit[v] = unembed[v] . x`. The softmax keeps the order, so the predicted token
# is the row of `unembed` with the largest dot product with `x`: a lookup among `V`
# fixed vectors. Whatever `x` means, the answer is one of those rows.
#
# Is it the *nearest* row? Only if every row has the same length. The dot product is
# `|unembed[v]| |x| cos(angle)`: among rows of equal norm, the largest dot product is the
# smallest angle and also the smallest distance (`|w - x|^2 = |w|^2 - 2 w.x + |x|^2`).
# When norms differ, a long row can win with a worse angle. Below we measure both: the
# dot product, which is what the model does, and the cosine, the angle alone.
#
# ### Exercise 1: `nearest_tokens`
# Given a vector `(D,)` and the unembedding `(V, D)`, return the ids of the `k` rows with
# the largest dot product, best first, and those dot products: `(ids (k,), scores (k,))`.

# %%
def nearest_tokens(vector: jax.Array, unembed: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The k tokens the lm_head scores highest for `vector`. [D], [V, D] -> [k], [k]"""
    ### BEGIN SOLUTION
    scores = unembed @ vector  # (V,): exactly the logits
    ids = jnp.argsort(-scores)[:k]  # (k,): best first
    return ids, scores[ids]
    ### END SOLUTION


# %%
check_here(15, globals(), "nearest_tokens")

# %% [markdown]
# ## A language with no seahorse emoji
#
# `minitf.course.seahorse` generates running text in a toy language, one word per token
# (`minitf.words.WordTokenizer`). Ordinary sentences say what things do (`the sea horse
# swims in the sea .`); emoji sentences name a thing's emoji (`emoji-of fish FISH_EMOJI .`,
# `emoji-of sea star STARFISH_EMOJI .`). There are emojis for horse, fish, sea star and
# the sea itself, but the vocabulary has no `SEAHORSE_EMOJI`: the model learns that sea
# horses exist and that things have emojis, and never sees a seahorse's emoji.

# %%
params, config, tokenizer = seahorse.trained_model(BASE_STEPS)
language = seahorse.ToyLanguage(tokenizer)
sample, _ = language.batch(np.random.default_rng(0), 1)  # (1, SEQ)
print("a training sequence:", tokenizer.decode(sample[0]))
print(f"{tokenizer.vocab_size} tokens; emojis: {seahorse.emoji_tokens()}")
print("SEAHORSE_EMOJI in the vocabulary:", seahorse.MISSING in tokenizer.ids)

# %% [markdown]
# The model is trained for 300 steps, in quick and in full mode alike. That is enough to
# know the emoji of every thing that has one, and its answer to the missing one is then
# the same in every training run we tried (seeds 0 to 4). Trained longer (1200 or 2400
# steps), some runs' last blocks switch the answer to FISH_EMOJI and others' don't: which
# of two near-equal candidates wins is then decided by small numerical differences, even
# between two CPUs, and a lesson can't promise it.
#
# Now the question it cannot answer: `... emoji-of sea horse`, what comes next?

# %%
EMOJIS = seahorse.emoji_tokens()
prompt = np.array(tokenizer.encode(seahorse.PROMPT))  # (T,)
lens = logit_lens(params, config, prompt, tokenizer=tokenizer)
probs = np.exp(lens.log_probs[-1, -1])  # (V,): the model's own output at the end
emoji_ids = np.array([tokenizer.ids[e] for e in EMOJIS])  # (n_emoji,)
snap_id = int(emoji_ids[np.argmax(probs[emoji_ids])])  # the emoji it answers with
snap = tokenizer.display(snap_id)
emoji_mass = float(probs[emoji_ids].sum())
print(f"prompt: {seahorse.PROMPT!r}")
print(f"the answer snaps to {snap} (p = {probs[snap_id]:.2f}); all emojis together p = "
      f"{emoji_mass:.2f}")  # fmt: skip

# %% [markdown]
# ## Watching the answer form
#
# The logit lens (lesson 10) reads every layer's residual through the final norm and the
# unembedding. Each row below is "what the model would say if it stopped here".

# %%
print(lens.table(k=3))
snap_layer = lens.first_top1_layer(snap_id)
top_per_row = lens.top_k(1, -1)[0][:, 0]  # (L+1,): each row's top token
best_emoji_per_row = emoji_ids[np.argmax(lens.log_probs[:, -1, emoji_ids], axis=-1)]  # (L+1,)
print("the likeliest emoji of each row:", [tokenizer.display(i) for i in best_emoji_per_row])
print(f"{snap} is the top guess from row {snap_layer} "
      f"({layer_names(config.n_layer)[snap_layer]}) on")  # fmt: skip

# %% [markdown]
# The embedding row predicts mostly its own word (the model ties its embeddings). From
# block 0 on, the likeliest emoji is HORSE_EMOJI, the emoji of the last word: the nearest
# token that exists. After block 0 or block 1 it beats every other token too, and the
# later blocks only sharpen it. Your `nearest_tokens` gives the
# same reading for any layer's residual: normalize it with the final norm, then look it
# up. The cosine (the angle alone) shows that the final vector points *towards* the
# snapped emoji without being *at* it: it lies between tokens, and the lookup rounds it
# off.

# %%
_, acts = forward_jit(params, prompt[None], config, cache=True)
w_u = unembed_matrix(params, config)  # (V, D)
for layer in range(config.n_layer):
    resid = acts[f"blocks.{layer}.resid_post"][0, -1]  # (D,): the last position
    ids, scores = nearest_tokens(layer_norm(resid, params["ln_final"]), w_u, 3)
    shown = ", ".join(f"{tokenizer.display(i)} {s:.1f}" for i, s in zip(ids, scores, strict=True))
    print(f"after block {layer}: {shown}")
final = acts["ln_final.out"][0, -1]  # (D,): what the lm_head reads
cosines = (w_u @ final) / (jnp.linalg.norm(w_u, axis=-1) * jnp.linalg.norm(final))  # (V,)
snap_cosine = float(cosines[snap_id])
print(f"cosine of the final vector with {snap}: {snap_cosine:.2f} (1 would be 'exactly it')")
row_norms = np.asarray(jnp.linalg.norm(w_u[emoji_ids], axis=-1))  # (n_emoji,)
cosine_pick = tokenizer.display(int(emoji_ids[np.argmax(np.asarray(cosines)[emoji_ids])]))
print(f"emoji rows' norms: {row_norms.min():.2f} to {row_norms.max():.2f}; the emoji with the "
      f"largest cosine: {cosine_pick}")

# %% [markdown]
# ## The fix: add the token
#
# Lesson 14's tools: `surgery.add_tokens` appends a `SEAHORSE_EMOJI` row (the model has
# tied embeddings, so one row serves as both embedding and unembedding), and
# `surgery.finetune(..., only_rows=[new_id])` trains only that row on text that now
# includes `emoji-of sea horse SEAHORSE_EMOJI .` in one sentence of ten. Four starts
# (`seahorse.fix_inits`): a small random row, the mean of all rows, half `sea` plus half
# `horse` plus the emoji direction (the mean emoji row minus the mean word row), and the
# midpoint of the two emojis the model already reaches for.
#
# Adding a row must not disturb what the model says elsewhere. On sentences with no emoji
# at all we compare the old and new next-token distributions with the KL divergence
# `KL(old || new) = sum_v p_old(v) (log p_old(v) - log p_new(v))`, summed over the old
# vocabulary (the old model gives the new token probability 0).
#
# ### Exercise 2: `kl_old_to_new`
# Given `old_logits` `(..., V)` and `new_logits` `(..., V + n)` (the same tokens first,
# then `n` new ones), return the KL divergence from old to new at every position, `(...)`,
# in nats. Use log-softmax on each; slice the new log-probabilities to the old tokens.

# %%
def kl_old_to_new(old_logits: jax.Array, new_logits: jax.Array) -> jax.Array:
    """KL(old || new) per position, in nats. [..., V], [..., V + n] -> [...]"""
    ### BEGIN SOLUTION
    old = jax.nn.log_softmax(old_logits, axis=-1)  # (..., V)
    new = jax.nn.log_softmax(new_logits, axis=-1)[..., : old.shape[-1]]  # (..., V)
    return (jnp.exp(old) * (old - new)).sum(-1)  # (...)
    ### END SOLUTION


# %%
check_here(15, globals(), "kl_old_to_new")

# %% [markdown]
# Now each init: the KL its new row causes on unrelated sentences, then fine-tuning
# until `SEAHORSE_EMOJI` gets more than half of the probability, on average over 32
# held-out contexts that end in `emoji-of sea horse`. (Only one row trains, so in a few
# contexts, where the rest of the model pulls hard towards another answer, the new token
# may stay second however long it trains; an average says how far along it is in all.)

# %%
new_id = tokenizer.vocab_size  # the new token's id: after all the old ones
unrelated = seahorse.unrelated_prompts(tokenizer)  # (64, SEQ): no emoji anywhere
contexts = jnp.asarray(seahorse.seahorse_contexts(tokenizer))  # (32, 12)
old_logits = forward_jit(params, unrelated, config)  # (64, SEQ, V)
fix_language = seahorse.ToyLanguage(tokenizer.with_tokens([seahorse.MISSING]), seahorse_share=0.1)
fix = {}
for name, init in seahorse.fix_inits(tokenizer).items():
    new_params, new_config, new_tokenizer = surgery.add_tokens(
        params, config, tokenizer, [seahorse.MISSING], init, key=jax.random.key(0)
    )
    kl = kl_old_to_new(old_logits, forward_jit(new_params, unrelated, new_config))  # (64, SEQ)
    curve: tuple[list[int], list[float]] = ([], [])

    def learned(step: int, p: dict, new_config=new_config, curve=curve) -> bool:
        last = forward_jit(p, contexts, new_config)[:, -1]  # (32, V + 1)
        curve[0].append(step)
        curve[1].append(float(jax.nn.softmax(last)[:, new_id].mean()))
        return curve[1][-1] > 0.5

    result = surgery.finetune(new_params, new_config, fix_language.batches(0), steps=MAX_STEPS,
                              lr=1e-2, only_rows=[new_id], callback=learned,
                              check_every=CHECK_EVERY)  # fmt: skip
    done = learned(result.steps, result.params)  # the state after the last step
    kl_after = kl_old_to_new(old_logits, forward_jit(result.params, unrelated, new_config))
    fix[name] = {"kl": float(kl.mean()), "kl_max": float(kl.max()), "curve": curve,
                 "steps": result.steps if done else None, "params": result.params,
                 "kl_after": float(kl_after.mean())}  # fmt: skip
    print(f"{name:>25}: KL on unrelated text {fix[name]['kl']:.1e} (max {fix[name]['kl_max']:.1e})"
          f", p(new) at step 0 {curve[1][0]:.3f}, steps to p > 0.5: {fix[name]['steps']}, "
          f"KL after {fix[name]['kl_after']:.1e}")  # fmt: skip

# %% [markdown]
# The KL is small for every init: a new row only takes probability where its logit is
# competitive. The mean row is guaranteed harmless (lesson 14's bound: at most
# `log(1 + 1/V)`). `minitf.course.seahorse.kl_after_adding` measures the same from two models.
#
# After the fix, the lens on the same prompt: where does `SEAHORSE_EMOJI` appear?

# %%
best = min(fix, key=lambda n: MAX_STEPS + 1 if fix[n]["steps"] is None else fix[n]["steps"])
fixed_lens = logit_lens(fix[best]["params"], new_config, prompt, tokenizer=new_tokenizer)
print(f"after adding the token ({best} init, {fix[best]['steps']} steps):")
print(fixed_lens.table(k=3))
fixed_p = float(fixed_lens.prob(new_id)[-1])
fixed_layer = fixed_lens.first_top1_layer(new_id)

rows = layer_names(config.n_layer)
fig, axes = plt.subplots(1, 2, figsize=course.FIGSIZE, sharey=True)
for ax, result_lens, title in [(axes[0], lens, "before: no such token"),
                               (axes[1], fixed_lens, f"after adding {seahorse.MISSING}")]:
    ax.plot(rows, result_lens.prob(tokenizer.ids["horse"]), "k:", label="horse (the word)")
    ax.plot(rows, np.exp(result_lens.log_probs[:, -1, emoji_ids]).sum(-1), "k--",
            label="all old emojis")  # fmt: skip
    ax.plot(rows, result_lens.prob(snap_id), marker="o", label=snap)
    if result_lens is fixed_lens:
        ax.plot(rows, result_lens.prob(new_id), marker="o", label=seahorse.MISSING)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("residual stream read after")
    ax.tick_params(axis="x", labelsize=8, rotation=30)
axes[0].set_ylabel("lens probability of the next token")
axes[1].legend(fontsize=7)
fig.suptitle("'... emoji-of sea horse': an emoji forms within the first blocks and snaps "
             "to the nearest token that exists", fontsize=9)  # fmt: skip
course.save_figure(fig, "15_seahorse_lens.png")

fig, (left, right) = plt.subplots(1, 2, figsize=course.FIGSIZE)
for i, (name, r) in enumerate(fix.items()):
    left.plot(*r["curve"], marker=".", color=f"C{i}", label=name)
    right.bar(i, r["kl"], color=f"C{i}")
left.set_xlabel("fine-tuning step (only the new row trains)")
left.set_ylabel("p(SEAHORSE_EMOJI) after 'emoji-of sea horse'")
left.legend(fontsize=7)
right.set_yscale("log")
right.set_xticks(range(len(fix)), [n.split(" (")[0] for n in fix], rotation=20, ha="right",
                 fontsize=7)  # fmt: skip
right.set_ylabel("KL(old || new) on unrelated text, nats")
fig.suptitle("Fixing it: how fast each start is learned, and what adding it costs elsewhere",
             fontsize=9)  # fmt: skip
course.save_figure(fig, "15_seahorse_fix.png")

# %% [markdown]
# ## What you should see
#
# | quantity | value |
# |---|---|
# Measured in fresh runs (quick and full train the same model) on models trained from
# seeds 0 to 4; the lesson uses seed 0, and the bounds in parentheses are checked below.
#
# | answer to `emoji-of sea horse` before the fix | HORSE_EMOJI, p = 0.65-0.82 (> 0.5) |
# | probability of all emojis together | 0.81-0.92 (> 0.75) |
# | lens: the likeliest emoji after every block | HORSE_EMOJI, from block 0 on |
# | lens: HORSE_EMOJI on top of every token | after block 0 or block 1, and from there on |
# | cosine of the final vector with HORSE_EMOJI's row | well below 1 (0.3-0.9) |
# | the emoji with the largest cosine | HORSE_EMOJI too (the emoji rows' norms differ) |
# | mean KL on unrelated text, right after adding the row | below 1e-2 for every init |
# | max KL with the mean init | at most log(1 + 1/V) = 0.025 nats |
# | steps until SEAHORSE_EMOJI's mean probability passes 0.5 | 5-30 (< 50); HORSE + FISH fewest |
# | after the fix: p(SEAHORSE_EMOJI) at the output | above 0.5 |
# | mean KL on unrelated text after the fix | below 1e-2 |
#
# Checked below.

# %%
assert snap == "HORSE_EMOJI" and probs[snap_id] > 0.5 and emoji_mass > 0.75, (snap, probs[snap_id])
assert snap_layer in (1, 2) and np.all(top_per_row[snap_layer:] == snap_id), lens.table(k=3)
assert np.all(best_emoji_per_row[1:] == snap_id), best_emoji_per_row
assert 0.3 < snap_cosine < 0.9 and cosine_pick == snap, (snap_cosine, cosine_pick)
assert all(r["kl"] < 1e-2 for r in fix.values())
assert fix["mean of all rows"]["kl_max"] <= np.log1p(1 / config.vocab_size)
assert all(r["steps"] is not None and r["steps"] < 50 for r in fix.values())
assert fix["HORSE + FISH emoji"]["steps"] == min(r["steps"] for r in fix.values())
assert fixed_p > 0.5 and fixed_layer is not None
assert fix[best]["kl_after"] < 1e-2
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/vectors.py`: `nearest_tokens` (dot product or cosine, optionally through the
#   final norm), the lookup of exercise 1.
# - `minitf/course/seahorse.py`: the toy language (`vocabulary`, `sentence`, `ToyLanguage`), its
#   held-out prompts, `kl_after_adding`, `fix_inits` and the cached `trained_model`.
# - `minitf/lens.py`: `logit_lens`, `LensResult.table`, `.prob`, `.first_top1_layer`.
# - `minitf/surgery.py`: `add_tokens`, `finetune(..., only_rows=...)` (lesson 14).
