# %% [markdown]
# # Lesson 5: Self-attention
#
# **Goal:** compute attention yourself (queries, keys, values, a causal mask, several
# heads) and prove with a gradient that no position peeks at the future.
#
# Attention is the only place where positions exchange information. Each position asks a
# question (its *query*), every position offers a label (its *key*) and a message (its
# *value*); a position reads the messages whose keys match its query. See *causal mask*
# and *attention pattern* in the [glossary](../docs/glossary.md).

# %%
import contextlib
import functools
import math

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from minitf import course, model, tasks
from minitf.course.check import check_here
from minitf.train import TrainConfig, loss_fn, make_optimizer, make_step

course.setup_matplotlib()
QUICK = course.quick_mode()
T, D = 6, 16  # sequence length and vector width for the examples

# %% [markdown]
# ## Queries, keys and values
#
# Three matrices turn each position's vector `x[t]` into `q[t]`, `k[t]` and `v[t]`.
# The score of position `t` for position `s` is the dot product `q[t] . k[s]`, divided by
# `sqrt(K)` so that scores don't grow with the width `K` (large scores saturate the
# softmax and its gradient vanishes). A softmax over `s` turns scores into weights.

# %%
kx, kq, kk, kv = jax.random.split(jax.random.key(0), 4)
x = jax.random.normal(kx, (T, D))  # (T, D): one vector per position
w_q, w_k, w_v = (jax.random.normal(k_, (D, D)) / math.sqrt(D) for k_ in (kq, kk, kv))
q, k, v = x @ w_q, x @ w_k, x @ w_v  # each (T, K) with K = D here
scores = q @ k.T / math.sqrt(D)  # (T, S): S = T key positions
weights = jax.nn.softmax(scores, axis=-1)  # (T, S), each row sums to 1
print("row sums:", weights.sum(-1))

# %% [markdown]
# ## The causal mask
#
# A language model predicts token `t + 1` from tokens `0..t`. If position `t` could read
# position `t + 1`, training would teach it to copy the answer. So scores for later
# positions are replaced by a huge negative number before the softmax, which makes their
# weights exactly zero.
#
# ### Exercise 1: `causal_mask`
# Return a `(T, T)` boolean array, `True` where query `t` may attend to key `s` (`s <= t`).

# %%
def causal_mask(T: int) -> jax.Array:
    """Lower-triangular [T, T] bool: row t is True for columns 0..t."""
    ### BEGIN SOLUTION
    return jnp.tril(jnp.ones((T, T), dtype=bool))
    ### END SOLUTION


# %% [markdown]
# ### Exercise 2: `self_attention` (one head)
# Given `x` `(T, D)`, weights `(D, K)` and a mask `(T, T)`, return `(out, pattern)`:
# `pattern[t, s]` the softmax weights (masked scores set to `jnp.finfo(x.dtype).min`) and
# `out = pattern @ v`, shape `(T, K)`. Use the mask you are given.

# %%
def self_attention(
    x: jax.Array, w_q: jax.Array, w_k: jax.Array, w_v: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One attention head. [T, D] -> out [T, K], pattern [T, T]."""
    ### BEGIN SOLUTION
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (T, K)
    scores = q @ k.T / math.sqrt(q.shape[-1])  # (T, T)
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    pattern = jax.nn.softmax(scores, axis=-1)  # (T, T)
    return pattern @ v, pattern
    ### END SOLUTION


# %%
check_here(5, globals(), "causal_mask")
check_here(5, globals(), "self_attention")

# %% [markdown]
# ## The leaky-mask bug, caught by a gradient
#
# An off-by-one (`jnp.tril(..., k=1)`) lets each position see one step ahead. Outputs
# still look reasonable, and (measured below) the training loss drops *faster*; a test
# catches it before any training. The test: the gradient of output `t` with respect to
# input `s` must be exactly zero for every `s > t`. Below, the reference
# `minitf.model.attend` with the right and the leaky mask; the figure shows how much each
# output depends on each input.

# %%
def dependence(mask: jax.Array) -> jax.Array:
    """[T, T]: |d out[t] / d x[s]| summed over vector entries, for one head."""

    def head(x_: jax.Array) -> jax.Array:
        q_, k_, v_ = ((x_ @ w)[:, None] for w in (w_q, w_k, w_v))  # (T, 1, D): one head
        z, _ = model.attend(q_, k_, v_, mask)  # (T, 1, D)
        return z[:, 0]  # (T, D)

    jac = jax.jacobian(head)(x)  # (T, D, T, D): output (t, i) by input (s, j)
    return jnp.abs(jac).sum(axis=(1, 3))  # (T, T)


right = dependence(model.causal_mask(T))
leaky = dependence(jnp.tril(jnp.ones((T, T), dtype=bool), k=1))
fig, axes = plt.subplots(1, 2, figsize=course.FIGSIZE)
for ax, dep, name in zip(axes, [right, leaky], ["causal mask", "leaky mask (k=1)"],
                         strict=True):
    ax.imshow(dep > 0, cmap="Greys")
    ax.set_title(name)
    ax.set_xlabel("input position s")
    ax.set_ylabel("output position t")
fig.suptitle("The leaky mask lets output t depend on input t+1 (above the diagonal)")
course.save_figure(fig, "05_causal_vs_leaky.png")
print("future dependence, causal:", float(jnp.triu(right, 1).sum()),
      " leaky:", float(jnp.triu(leaky, 1).sum()))

# %% [markdown]
# ### What training would show
#
# Without that test, would you notice? Train lesson 4's addition model twice for
# `RUN_STEPS` steps, the same data and seed: once as minitf builds it, once with the
# leaky mask swapped in for `model.causal_mask` (which `model.block` calls) while it
# trains. Then ask both to add held-out problems the way a model is used, generating the
# answer one digit at a time: there, no future token exists to peek at.

# %%
RUN_STEPS = 600  # training steps of each run


@contextlib.contextmanager
def mask_in_minitf(mask_fn):
    """Make minitf's blocks build their mask with `mask_fn` inside the `with`."""
    original = model.causal_mask
    model.causal_mask = mask_fn
    try:
        yield
    finally:
        model.causal_mask = original


def leaky_mask(T: int) -> jax.Array:
    return jnp.tril(jnp.ones((T, T), dtype=bool), k=1)  # (T, T): one step into the future


addition = tasks.addition(3)
addition_config = tasks.config_for(addition, **tasks.train_defaults(addition)[0])


def short_run(mask_fn) -> dict:
    """Train from scratch with minitf's step; -> per-step losses and greedy exact match."""
    with mask_in_minitf(mask_fn):  # the step is traced (and compiled) inside the `with`
        optimizer = make_optimizer(TrainConfig(steps=RUN_STEPS, lr=3e-3))
        step = make_step(functools.partial(loss_fn, config=addition_config), optimizer)
        params = jax.jit(model.init_params, static_argnums=0)(addition_config, jax.random.key(0))
        opt_state, rng, losses = optimizer.init(params), np.random.default_rng(0), []
        for _ in range(RUN_STEPS):
            params, opt_state, loss, _ = step(params, opt_state, addition.batch(rng, 64))
            losses.append(float(loss))
    # generation has its own causal mask (lesson 9): the answer is written digit by digit
    return {"loss": np.array(losses), "exact": addition.evaluate(params, addition_config, n=500)}


runs = {"causal mask": short_run(model.causal_mask), "leaky mask": short_run(leaky_mask)}
for name, run in runs.items():
    print(f"{name:>11}: training loss {run['loss'][:10].mean():.3f} (first 10 steps) -> "
          f"{run['loss'][-20:].mean():.4f} (last 20); exact match when generating "
          f"{run['exact']:.1%}")

fig, (ax_loss, ax_exact) = plt.subplots(1, 2, figsize=course.FIGSIZE,
                                        gridspec_kw={"width_ratios": [2, 1]})  # fmt: skip
for name, run in runs.items():
    ax_loss.semilogy(run["loss"], label=name)
ax_loss.set_xlabel("training step")
ax_loss.set_ylabel("training loss (log scale)")
ax_loss.legend()
ax_exact.bar(list(runs), [100 * run["exact"] for run in runs.values()],
             color=["tab:blue", "tab:orange"])  # fmt: skip
ax_exact.set_ylabel("held-out exact match, generating (%)")
ax_exact.set_ylim(0, 100)
fig.suptitle("The leaky mask's loss falls faster, and its answers are wrong", fontsize=10)
course.save_figure(fig, "05_leaky_training.png")

# %% [markdown]
# The leaky model's loss falls far below the honest one's: predicting the next digit is
# easy when you can read it. It learned to copy, not to add, so when it has to write the
# answer it gets almost nothing right. A lower training loss is not a better model; the
# gradient test above catches the bug in a second, before any training.

# %% [markdown]
# ## Several heads
#
# One head computes one weighted average per position, so it can only look for one
# thing at a time. Multi-head attention splits the `D` dimensions into `H` heads of width
# `K = D / H`, lets each attend on its own, and concatenates the results. Same cost,
# `H` different patterns.
#
# ### Exercise 3: `multi_head_attention`
# With `(D, D)` weights, compute `q, k, v` `(T, D)`, reshape each to `(T, H, K)`, run the
# attention of exercise 2 in every head, and return the heads concatenated, `(T, D)`.

# %%
def multi_head_attention(
    x: jax.Array, w_q: jax.Array, w_k: jax.Array, w_v: jax.Array, n_head: int, mask: jax.Array
) -> jax.Array:
    """H heads of width D // H. [T, D] -> [T, D] (heads concatenated, no output projection)."""
    ### BEGIN SOLUTION
    T_, D_ = x.shape
    K = D_ // n_head
    q, k, v = ((x @ w).reshape(T_, n_head, K) for w in (w_q, w_k, w_v))  # (T, H, K)
    scores = jnp.einsum("thk,shk->hts", q, k) / math.sqrt(K)  # (H, T, S)
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    pattern = jax.nn.softmax(scores, axis=-1)  # (H, T, S)
    return jnp.einsum("hts,shk->thk", pattern, v).reshape(T_, D_)  # (T, D)
    ### END SOLUTION


# %%
check_here(5, globals(), "multi_head_attention")

# %% [markdown]
# The reference does the same in `minitf.model.qkv` + `attend`. Four heads of a random
# model already attend differently:

# %%
H = 4
qh, kh, vh = (model.split_heads(x @ w, H) for w in (w_q, w_k, w_v))  # (T, H, K)
z, pattern = model.attend(qh, kh, vh, model.causal_mask(T))  # (T, H, K), (H, T, T)
fig, axes = plt.subplots(1, H, figsize=course.FIGSIZE)
for h, ax in enumerate(axes):
    ax.imshow(pattern[h], vmin=0, vmax=1, cmap="viridis")
    ax.set_title(f"head {h}")
    ax.set_xlabel("key s")
axes[0].set_ylabel("query t")
fig.suptitle("Each head has its own pattern; all are zero above the diagonal")
course.save_figure(fig, "05_head_patterns.png")

# %% [markdown]
# ## What you should see
#
# The two training runs were measured with seeds 0, 1 and 2 (the lesson uses 0); the
# bounds in parentheses are what the cell below checks.
#
# | quantity | value |
# |---|---|
# | rows of every attention pattern sum to | 1 (within 1e-5) |
# | first query's pattern | `[1, 0, 0, ...]`: it can only see itself |
# | future dependence with the causal mask | exactly 0 |
# | future dependence with the leaky mask | > 0 (about 1 or more per row) |
# | training loss after 600 steps, leaky vs causal | 0.0001-0.0003 vs 0.14-0.29 (< a tenth) |
# | exact match when generating, leaky vs causal | 0-1.2% (< 5%) vs 59-83% (> 40%) |
#
# Checked below.

# %%
assert jnp.allclose(pattern.sum(-1), 1.0, atol=1e-5)
assert jnp.allclose(pattern[:, 0, 0], 1.0)
assert float(jnp.triu(right, 1).sum()) == 0.0
assert float(jnp.triu(leaky, 1).sum()) > 0.5
final_loss = {name: float(run["loss"][-20:].mean()) for name, run in runs.items()}
assert final_loss["leaky mask"] < 0.1 * final_loss["causal mask"], final_loss
assert runs["leaky mask"]["exact"] < 0.05 and runs["causal mask"]["exact"] > 0.4, runs
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/model.py`: `causal_mask`, `split_heads`, `qkv` (one matmul for q, k and v),
#   `attend` (scores, mask, softmax, mixing), `attn_output` (heads back into the stream).
# - `tests/test_model.py`: the causality-by-gradient test on the whole model.
