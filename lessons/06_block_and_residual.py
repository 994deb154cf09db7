# %% [markdown]
# # Lesson 6: The transformer block and the residual stream
#
# **Goal:** write a transformer block yourself (layer norm, the GELU MLP, attention and
# the two residual additions), see the model as a stream of vectors that every block
# adds to, and count its parameters by formula.
#
# A GPT-2 block reads the *residual stream* (see the [glossary](../docs/glossary.md)),
# normalizes it, attends, and *adds* the result back; then does the same with an MLP.
# Nothing is overwritten: each block writes a small update into a shared stream.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

from minitf import course, model
from minitf.course.check import check_here

course.setup_matplotlib()
QUICK = course.quick_mode()

# %% [markdown]
# ## A small model and its residual stream
#
# `forward(..., cache=True)` returns every intermediate activation. For each block `l`:
# `resid_pre` (what it reads), `resid_mid` (after attention adds its output) and
# `resid_post` (after the MLP adds its output, and the next block's `resid_pre`).

# %%
config = model.Config(vocab_size=50, n_layer=4, n_head=4, d_model=64, d_mlp=256, max_len=16)
# jit compiles init_params and forward once each (eager mode compiles op by op: slow)
params = jax.jit(model.init_params, static_argnums=0)(config, jax.random.key(0))
tokens = jax.random.randint(jax.random.key(1), (1, 12), 0, config.vocab_size)  # (B, T)
forward = jax.jit(model.forward, static_argnames=("config", "cache"))
logits, acts = forward(params, tokens, config, cache=True)
print("logits:", logits.shape)
print("cached:", [name for name in acts if name.startswith("blocks.0.")])

# %% [markdown]
# ## Layer norm: every block reads vectors of one size
#
# The residual stream is a running sum: every block adds to it, so the size of its
# vectors changes from layer to layer, and differs from token to token. A block's
# weights can't be tuned for inputs of every size: attention scores would grow with the
# stream until the softmax saturates, and the MLP's non-linearity would see ever larger
# numbers. So each block first *normalizes* what it
# reads: per vector, subtract its mean over the `D` entries and divide by its standard
# deviation, then multiply by a learned `scale` and add a learned `bias` (so the block
# can still choose the size it wants, one number per dimension). Each vector is
# normalized on its own, with no statistics over the batch, so a model treats one
# sequence the same whether it is trained in a batch or generates alone. The stream
# itself is never normalized: the block normalizes its *copy*.
#
# ### Exercise 1: `layer_norm`
# For `x` `(..., D)`, return `(x - mean) / sqrt(var + model.LN_EPS) * scale + bias`, with
# the mean and (biased) variance over the last axis; `scale` and `bias` are `(D,)`.
# (`LN_EPS` = 1e-5 keeps a constant vector from dividing by zero.)

# %%
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """Normalize each vector, then scale and shift. [..., D], [D], [D] -> [..., D]"""
    ### BEGIN SOLUTION
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    return (x - mean) / jnp.sqrt(var + model.LN_EPS) * scale + bias  # (..., D)
    ### END SOLUTION


# %%
check_here(6, globals(), "layer_norm")

# %% [markdown]
# ## The MLP: where each position computes
#
# Attention moves information between positions, and what it moves is a weighted
# average of value vectors: mixing, not computing. The MLP is where a position computes
# with what it holds, the same small network applied to every position on its own:
#
#     mlp(x) = gelu(x @ w_in + b_in) @ w_out + b_out      (D -> M -> D, M = 4 D in GPT-2)
#
# Each of the `M` hidden units (*neurons*) reads one direction of the stream (a column
# of `w_in`), fires when the vector points that way, and writes its own direction back
# (a row of `w_out`). The non-linearity in the middle is what makes this more than one
# matrix: without it, `(x @ w_in) @ w_out` is just `x @ (w_in @ w_out)`, a single linear
# map (checked below). GPT-2's non-linearity is *GELU*, `x * Phi(x)` with `Phi` the
# standard normal's CDF: it lets positive inputs through, pushes large negative ones to
# 0, and bends smoothly in between (unlike ReLU's corner at 0, so small negative inputs
# still get a little gradient). GPT-2 computes it with a tanh approximation:
#
#     gelu(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
#
# ### Exercise 2: `mlp`
# Write the MLP for `x` `(..., D)` with the parameters of `block_params["mlp"]`:
# `w_in` `(D, M)`, `b_in` `(M,)`, `w_out` `(M, D)`, `b_out` `(D,)`. Write GELU with the
# tanh formula above (don't call `jax.nn.gelu`).

# %%
def mlp(x: jax.Array, mlp_params: dict) -> jax.Array:
    """GPT-2's MLP on each position. [..., D] -> [..., D]"""
    ### BEGIN SOLUTION
    pre = x @ mlp_params["w_in"] + mlp_params["b_in"]  # (..., M)
    hidden = 0.5 * pre * (1 + jnp.tanh(jnp.sqrt(2 / jnp.pi) * (pre + 0.044715 * pre**3)))
    return hidden @ mlp_params["w_out"] + mlp_params["b_out"]  # (..., D)
    ### END SOLUTION


# %%
check_here(6, globals(), "mlp")

# %%
xs = jnp.linspace(-4, 4, 161)  # (161,)
gelu = 0.5 * xs * (1 + jnp.tanh(jnp.sqrt(2 / jnp.pi) * (xs + 0.044715 * xs**3)))  # (161,)
exact_gelu = jax.nn.gelu(xs, approximate=False)  # x * Phi(x), by the error function
gelu_gap = float(jnp.abs(gelu - exact_gelu).max())
block0 = params["blocks"][0]["mlp"]
resid = acts["blocks.0.resid_mid"][0]  # (T, D): what block 0's MLP reads (before its norm)
linear_only = (resid @ block0["w_in"] + block0["b_in"]) @ block0["w_out"] + block0["b_out"]
one_matrix = resid @ (block0["w_in"] @ block0["w_out"]) + (block0["b_in"] @ block0["w_out"]
                                                           + block0["b_out"])  # fmt: skip
collapse_gap = float(jnp.abs(linear_only - one_matrix).max())
print(f"tanh GELU vs exact GELU: largest difference {gelu_gap:.1e} on [-4, 4]")
print(f"an MLP without its non-linearity vs one matrix: largest difference {collapse_gap:.1e}")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
ax.plot(xs, gelu, label="GELU (tanh form, GPT-2)")
ax.plot(xs, jnp.maximum(xs, 0), linestyle="--", label="ReLU")
ax.axhline(0, color="gray", linewidth=0.5)
ax.set_xlabel("input of a hidden unit")
ax.set_ylabel("output")
ax.legend()
ax.set_title("GELU: like ReLU, but smooth, with a small dip below zero")
course.save_figure(fig, "06_gelu.png")

# %% [markdown]
# ### Exercise 3: `block`
# Now one whole pre-norm block, for one sequence `(T, D)`, with the parameters
# `params["blocks"][l]` (keys `ln1`, `attn`, `ln2`, `mlp`; each norm has `scale` and
# `bias`). Use your `layer_norm` and `mlp`, and write the attention yourself, as in
# lesson 5: `attn["w_qkv"]` `(D, 3D)` and `attn["b_qkv"]` `(3D,)` give queries, keys and
# values side by side (split into three), each split into `n_head` heads of width
# `K = D / n_head`; scores scaled by `1 / sqrt(K)`, the causal mask, softmax over keys,
# the heads concatenated, then the output projection `attn["w_out"]` `(D, D)` +
# `attn["b_out"]`. In two lines of math:
#
#     resid_mid  = resid_pre + attention(layer_norm(resid_pre, ln1))
#     resid_post = resid_mid + mlp(layer_norm(resid_mid, ln2))

# %%
def block(resid_pre: jax.Array, block_params: dict, n_head: int) -> jax.Array:
    """One transformer block. [T, D] -> [T, D]"""
    ### BEGIN SOLUTION
    T, D = resid_pre.shape
    K = D // n_head
    ln1, attn, ln2 = block_params["ln1"], block_params["attn"], block_params["ln2"]
    x = layer_norm(resid_pre, ln1["scale"], ln1["bias"])  # (T, D)
    qkv = x @ attn["w_qkv"] + attn["b_qkv"]  # (T, 3D)
    q, k, v = (part.reshape(T, n_head, K) for part in jnp.split(qkv, 3, axis=-1))  # (T, H, K)
    scores = jnp.einsum("thk,shk->hts", q, k) / jnp.sqrt(K)  # (H, T, S)
    causal = jnp.tril(jnp.ones((T, T), dtype=bool))  # (T, S)
    scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)  # (H, T, S)
    pattern = jax.nn.softmax(scores, axis=-1)  # (H, T, S)
    z = jnp.einsum("hts,shk->thk", pattern, v).reshape(T, D)  # (T, D): heads side by side
    resid_mid = resid_pre + z @ attn["w_out"] + attn["b_out"]  # (T, D)
    x = layer_norm(resid_mid, ln2["scale"], ln2["bias"])  # (T, D)
    return resid_mid + mlp(x, block_params["mlp"])  # (T, D)
    ### END SOLUTION


# %%
check_here(6, globals(), "block")

# %% [markdown]
# ## Each block adds a little
#
# Measure how big the stream is, and how big each block's update is, at every stage.
# At initialization the updates are small compared with the embeddings (GPT-2 scales the
# writing matrices by `1/sqrt(2 n_layer)` for this), so the stream changes gradually.

# %%
stages, norms = [], []
for layer in range(config.n_layer):
    for part in ("resid_pre", "resid_mid"):
        stages.append(f"{layer}.{part.split('_')[1]}")
        norms.append(float(jnp.linalg.norm(acts[f"blocks.{layer}.{part}"][0], axis=-1).mean()))
stages.append(f"{config.n_layer - 1}.post")
norms.append(float(jnp.linalg.norm(acts[f"blocks.{config.n_layer - 1}.resid_post"][0],
                                   axis=-1).mean()))
updates = [float(jnp.linalg.norm(acts[f"blocks.{layer}.{part}"][0], axis=-1).mean())
           for layer in range(config.n_layer) for part in ("attn_out", "mlp_out")]

fig, ax = plt.subplots(figsize=course.FIGSIZE)
ax.plot(stages, norms, marker="o", label="|residual stream|")
ax.bar(stages[1:], updates, alpha=0.5, color="tab:orange", label="|update written by the part|")
ax.set_xlabel("stage (block.stage)")
ax.set_ylabel("mean vector norm")
ax.legend()
ax.set_title("At init every block adds a small update to a stream that persists")
course.save_figure(fig, "06_residual_stream.png")

# %% [markdown]
# The model's output reads only the last residual: final layer norm, then the
# unembedding. `model.logits_from_resid` does exactly that.

# %%
last = acts[f"blocks.{config.n_layer - 1}.resid_post"]
rebuilt = model.logits_from_resid(params, config, last)
max_diff = float(jnp.abs(rebuilt - logits).max())
print(f"logits rebuilt from the last residual differ by at most {max_diff:.1e}")

# %% [markdown]
# ## Counting parameters
#
# Every parameter is in `params`, a nested dict, so `model.count_params` just sums the
# array sizes. Can you predict the number from the config alone?
#
# ### Exercise 4: `count_params_formula`
# Return the number of parameters `model.init_params(config, key)` creates, computed from
# the config's fields only. Per block: two layer norms (scale and bias, `D` each),
# `w_qkv` `(D, 3D)` + `b_qkv`, `w_out` `(D, D)` + `b_out`, the MLP's `w_in` `(D, M)` + `b_in`
# and `w_out` `(M, D)` + `b_out`. Plus `embed` `(V, D)`, `pos_embed` `(max_len, D)`,
# `ln_final`, and `unembed` `(V, D)` unless `config.tie_embeddings`.

# %%
def count_params_formula(config: model.Config) -> int:
    """Number of parameters of a GPT-2-style model with this config."""
    ### BEGIN SOLUTION
    D, M, V = config.d_model, config.d_mlp, config.vocab_size
    per_block = (2 * 2 * D) + (D * 3 * D + 3 * D) + (D * D + D) + (D * M + M) + (M * D + D)
    total = V * D + config.max_len * D + config.n_layer * per_block + 2 * D
    return total if config.tie_embeddings else total + V * D
    ### END SOLUTION


# %%
check_here(6, globals(), "count_params_formula")

# %% [markdown]
# GPT-2 small (the 124M model) is this architecture with `V = 50257`, 12 layers, 12 heads,
# `D = 768`, `M = 3072`, 1024 positions and tied embeddings. `jax.eval_shape` runs
# `init_params` without allocating anything, so we can count its parameters for free and
# see where they are.

# %%
gpt2_small = model.Config(vocab_size=50257, n_layer=12, n_head=12, d_model=768, d_mlp=3072,
                          max_len=1024, tie_embeddings=True)
shapes = jax.eval_shape(lambda: model.init_params(gpt2_small, jax.random.key(0)))
n_gpt2 = sum(x.size for x in jax.tree_util.tree_leaves(shapes))


def size_of(tree: object) -> int:
    return sum(x.size for x in jax.tree_util.tree_leaves(tree))


parts = {
    "embeddings": size_of([shapes["embed"], shapes["pos_embed"]]),
    "attention": size_of([b["attn"] for b in shapes["blocks"]]),
    "MLP": size_of([b["mlp"] for b in shapes["blocks"]]),
    "layer norms": n_gpt2,
}
parts["layer norms"] -= parts["embeddings"] + parts["attention"] + parts["MLP"]
print(f"GPT-2 small: {n_gpt2:,} parameters")
for name, n in parts.items():
    print(f"  {name:12} {n:>12,}  ({n / n_gpt2:.1%})")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
ax.bar(list(parts), [n / 1e6 for n in parts.values()], color="tab:green")
ax.set_ylabel("parameters (millions)")
ax.set_xlabel("part of GPT-2 small")
ax.set_title("GPT-2 small: MLPs hold most weights, then the token embedding")
course.save_figure(fig, "06_gpt2_params.png")

# %% [markdown]
# ## What you should see
#
# | quantity | value |
# |---|---|
# | GELU's tanh form vs the exact `x * Phi(x)` | within 1e-3 |
# | an MLP without GELU vs one matrix | the same map (diff < 1e-5) |
# | logits rebuilt from the last `resid_post` vs `forward` | equal (max diff < 1e-5) |
# | each block's update vs the stream at init | smaller (ratio < 1) |
# | GPT-2 small parameters | 124,439,808 |
# | share of GPT-2 small in MLPs | about 46% (45-47%) |
#
# Checked below.

# %%
assert gelu_gap < 1e-3 and collapse_gap < 1e-5, (gelu_gap, collapse_gap)
assert max_diff < 1e-5
assert max(updates) < min(norms)
assert n_gpt2 == 124_439_808
assert 0.45 < parts["MLP"] / n_gpt2 < 0.47
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/model.py`: `layer_norm`, `mlp` and `block` (the ones you wrote; `block` also
#   keeps its activations for the cache and takes hooks), `qkv`, `attend` and
#   `attn_output` (its attention, in three steps), and `forward` (embeddings, `block` for
#   each of `params["blocks"]`, the final norm and the unembedding), `logits_from_resid`,
#   `count_params`, `init_params` (the `1/sqrt(2 n_layer)` scaling).
# - `minitf/lens.py`: the logit lens applies `logits_from_resid` to every layer's
#   residual (lesson 10).
