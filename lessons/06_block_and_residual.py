# %% [markdown]
# # Lesson 6: The transformer block and the residual stream
#
# **Goal:** assemble a transformer block from minitf's pieces, see the model as a stream
# of vectors that every block adds to, and count its parameters by formula.
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
# ### Exercise 1: `block`
# Write one pre-norm block for one sequence, with minitf's pieces:
# `model.layer_norm`, `model.qkv`, `model.causal_mask`, `model.attend`, `model.attn_output`
# and `model.mlp`. The parameters are `params["blocks"][l]`, with keys `ln1`, `attn`,
# `ln2`, `mlp`. In two lines of math:
#
#     resid_mid  = resid_pre + attention(layer_norm(resid_pre, ln1))
#     resid_post = resid_mid + mlp(layer_norm(resid_mid, ln2))

# %%
def block(resid_pre: jax.Array, block_params: dict, n_head: int) -> jax.Array:
    """One transformer block. [T, D] -> [T, D]"""
    ### BEGIN SOLUTION
    T = resid_pre.shape[0]
    q, k, v = model.qkv(model.layer_norm(resid_pre, block_params["ln1"]),
                        block_params["attn"], n_head)  # (T, H, K)
    z, _ = model.attend(q, k, v, model.causal_mask(T))  # (T, H, K)
    resid_mid = resid_pre + model.attn_output(z, block_params["attn"])  # (T, D)
    hidden = model.layer_norm(resid_mid, block_params["ln2"])  # (T, D)
    return resid_mid + model.mlp(hidden, block_params["mlp"])  # (T, D)
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
# ### Exercise 2: `count_params_formula`
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
# | logits rebuilt from the last `resid_post` vs `forward` | equal (max diff < 1e-5) |
# | each block's update vs the stream at init | smaller (ratio < 1) |
# | GPT-2 small parameters | 124,439,808 |
# | share of GPT-2 small in MLPs | about 46% (45-47%) |
#
# Checked below.

# %%
assert max_diff < 1e-5
assert max(updates) < min(norms)
assert n_gpt2 == 124_439_808
assert 0.45 < parts["MLP"] / n_gpt2 < 0.47
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/model.py`: `block` (the one you wrote, which also keeps its activations
#   for the cache) and `forward` (embeddings, `block` for each of `params["blocks"]`,
#   the final norm and the unembedding), `layer_norm`, `mlp`, `logits_from_resid`,
#   `count_params`, `init_params` (the `1/sqrt(2 n_layer)` scaling).
# - `minitf/lens.py`: the logit lens applies `logits_from_resid` to every layer's
#   residual (lesson 10).
