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
import math

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

from minitf import course, model
from minitf.course.check import check_here

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
# still look reasonable, and the training loss drops *faster*; only a test catches it.
# The test: the gradient of output `t` with respect to input `s` must be exactly zero for
# every `s > t`. Below, the reference `minitf.model.attend` with the right and the leaky
# mask; the figure shows how much each output depends on each input.

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
# | quantity | value |
# |---|---|
# | rows of every attention pattern sum to | 1 (within 1e-5) |
# | first query's pattern | `[1, 0, 0, ...]`: it can only see itself |
# | future dependence with the causal mask | exactly 0 |
# | future dependence with the leaky mask | > 0 (about 1 or more per row) |
#
# Checked below.

# %%
assert jnp.allclose(pattern.sum(-1), 1.0, atol=1e-5)
assert jnp.allclose(pattern[:, 0, 0], 1.0)
assert float(jnp.triu(right, 1).sum()) == 0.0
assert float(jnp.triu(leaky, 1).sum()) > 0.5
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/model.py`: `causal_mask`, `split_heads`, `qkv` (one matmul for q, k and v),
#   `attend` (scores, mask, softmax, mixing), `attn_output` (heads back into the stream).
# - `tests/test_model.py`: the causality-by-gradient test on the whole model.
