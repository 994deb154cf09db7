# %% [markdown]
# # Lesson 4: Embeddings
#
# **Goal:** see that an embedding is a table of vectors, one row per token, random at
# first, and measure how training on 3-digit addition arranges the ten digits in order.
#
# Lesson 2 turned text into token ids. A model can't compute with an id: the number 7 says
# nothing about the token it names. So the first thing a transformer does is look up each
# id's row in a learned matrix, the *embedding* (see the
# [glossary](../docs/glossary.md#embedding--unembedding)). Those vectors start random;
# everything they come to mean, training puts there.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from minitf import course, model, plots, tasks, token_groups
from minitf.course.check import check_here

course.setup_matplotlib()
QUICK = course.quick_mode()
N_RANDOM = 200  # random embedding matrices: what "no organization" looks like

# %% [markdown]
# ## A table with one row per token
#
# The model of this lesson does 3-digit addition, written one character per token:
# `123+045=0168`. Its vocabulary is the ten digits (ids 0-9, so an id *is* its digit's
# value) plus `+` and `=`. Its embedding `params["embed"]` has shape `(V, D)`: `V = 12`
# rows of width `D = 64`. `init_params` fills it with small random numbers
# (normal, std 0.02), the same key as the training run below starts from.

# %%
task = tasks.addition(3)
tok = task.tokenizer
config = tasks.config_for(task, **tasks.train_defaults(task)[0])  # (model size, settings)
params_init = jax.jit(model.init_params, static_argnums=0)(config, jax.random.key(0))
embed_init = np.asarray(params_init["embed"])  # (V, D)
tokens = jnp.asarray(tok.encode("123+045="))  # (T,)
labels = [tok.decode([i]) for i in range(config.vocab_size)]
print("vocabulary:", labels)
print("embed:", embed_init.shape, " tokens:", tokens.tolist())

# %% [markdown]
# ### Exercise 1: `embed`
# Return the vectors of `tokens`: row `tokens[t]` of `embed_matrix` for every position.
# `tokens` may have any shape `(...)`; the result has shape `(..., D)`. One line.

# %%
def embed(tokens: jax.Array, embed_matrix: jax.Array) -> jax.Array:
    """Look up each token's row of the embedding. [...] int, [V, D] -> [..., D]"""
    ### BEGIN SOLUTION
    return jnp.take(jnp.asarray(embed_matrix), tokens, axis=0)  # (..., D)
    ### END SOLUTION


# %%
check_here(4, globals(), "embed")

# %% [markdown]
# ## A lookup is a matrix product with a one-hot vector
#
# Write token `v` as a [*one-hot*](../docs/glossary.md#one-hot-vector) vector: `V` zeros
# with a 1 at index `v`. Multiplying it by the embedding picks out row `v`, so the lookup
# is a linear layer whose inputs happen to be one-hot. Models do the lookup because it is
# cheaper: the product spends `V * D` multiply-adds per token on zeros (GPT-2: 50257 x 768
# each).

# %%
one_hot = jax.nn.one_hot(tokens, config.vocab_size)  # (T, V)
looked_up = jnp.take(params_init["embed"], tokens, axis=0)  # (T, D), as model.forward does
# precision="highest": a full-float32 product, so the comparison is exact on any device
as_product = jnp.matmul(one_hot, params_init["embed"], precision="highest")  # (T, D)
lookup_diff = float(jnp.abs(looked_up - as_product).max())
print(f"one-hot @ embed vs lookup: max difference {lookup_diff:.1e}")

# %% [markdown]
# The product view also says how training moves the table. The gradient of the loss with
# respect to `embed` is `one_hot.T @ (gradient at the looked-up vectors)`: only the rows
# of tokens in the batch receive anything. Below, a stand-in loss on `123+045=`: the rows
# of `6`, `7`, `8` and `9` (absent from it) get exactly zero.

# %%
def stand_in_loss(embed_matrix: jax.Array) -> jax.Array:
    vectors = jnp.take(embed_matrix, tokens, axis=0)  # (T, D)
    return jnp.sum(jnp.tanh(vectors.sum(axis=-1)))


grad_embed = jax.jit(jax.grad(stand_in_loss))(params_init["embed"])  # (V, D)
rows_touched = [labels[v] for v in range(config.vocab_size) if jnp.any(grad_embed[v] != 0)]
print("rows with a non-zero gradient:", rows_touched)

# %% [markdown]
# ## Random vectors point every which way
#
# How alike are two tokens' vectors? The *cosine similarity* compares directions only:
# `a . b / (|a| |b|)`, 1 for the same direction, 0 for perpendicular, -1 for opposite.
# Random vectors in `D` dimensions are nearly perpendicular: their cosine is about 0 give
# or take `1 / sqrt(D)` ([glossary](../docs/glossary.md#cosine-similarity)).
#
# ### Exercise 2: `cosine_similarity_matrix`
# Given `vectors` `(N, D)`, return the `(N, N)` matrix of the cosine similarity of every
# pair of rows.

# %%
def cosine_similarity_matrix(vectors: jax.Array) -> jax.Array:
    """Cosine similarity of every pair of rows. [N, D] -> [N, N], 1 on the diagonal."""
    ### BEGIN SOLUTION
    vectors = jnp.asarray(vectors)
    unit = vectors / jnp.linalg.norm(vectors, axis=-1, keepdims=True)  # (N, D), each |row| = 1
    return unit @ unit.T  # (N, N)
    ### END SOLUTION


# %%
check_here(4, globals(), "cosine_similarity_matrix")

# %%
DIGITS = np.arange(10)  # token ids 0-9 are the digits 0-9
cos_init = np.asarray(cosine_similarity_matrix(embed_init))  # (V, V)
off_diagonal = cos_init[~np.eye(config.vocab_size, dtype=bool)]  # (V * (V - 1),)
print(f"untrained: off-diagonal cosines {off_diagonal.mean():+.3f} +- {off_diagonal.std():.3f}"
      f"  (1/sqrt(D) = {1 / np.sqrt(config.d_model):.3f})")

# %% [markdown]
# ## After training
#
# `course.trained_model()` trains this model on addition with `minitf train`'s defaults
# (once, then it is cached; it gets almost every unseen problem right) and returns the
# parameters. Same shapes, same starting point as `params_init`; only training differs.

# %%
params, config, task = course.trained_model("addition")
embed_trained = np.asarray(params["embed"])  # (V, D)
cos_trained = np.asarray(cosine_similarity_matrix(embed_trained))  # (V, V)
print("trained embed:", embed_trained.shape)
print("cosine of digit 3 with 0..9 :", np.round(cos_trained[3, :10], 2))
print("           untrained, same :", np.round(cos_init[3, :10], 2))

fig, axes = plt.subplots(1, 2, figsize=course.FIGSIZE)
for ax, cos, name in zip(axes, [cos_init, cos_trained], ["untrained", "trained"],
                         strict=True):
    image = ax.imshow(cos, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(config.vocab_size), labels)
    ax.set_yticks(range(config.vocab_size), labels)
    ax.set_title(f"{name}: cosine similarity")
fig.colorbar(image, ax=axes[1], fraction=0.046)
fig.suptitle("After training, digits close in value have similar vectors (a band "
             "along the diagonal)", fontsize=9)
course.save_figure(fig, "04_cosine_similarity.png")

# %% [markdown]
# ## A map of the vectors: PCA
#
# 64 dimensions don't fit on a page. *PCA* (principal component analysis) finds the
# directions along which the rows spread out most; projecting onto the top two gives the
# most faithful flat picture. Recipe: subtract the mean row (PCA is about the spread
# around the average), take the singular value decomposition `X = U S V^T`, and project
# onto the first rows of `V^T`, the principal directions, largest singular value first.
#
# ### Exercise 3: `pca_project`
# Return the coordinates of the rows of `matrix` `(N, D)` along its top `n_components`
# principal directions, shape `(N, n_components)`. (A direction's sign is arbitrary:
# either sign is accepted.)

# %%
def pca_project(matrix: jax.Array, n_components: int = 2) -> jax.Array:
    """Coordinates along the top principal directions. [N, D] -> [N, n_components]"""
    ### BEGIN SOLUTION
    x = jnp.asarray(matrix, dtype=jnp.float32)  # (N, D)
    x = x - x.mean(axis=0, keepdims=True)  # (N, D): centred
    _, _, vt = jnp.linalg.svd(x, full_matrices=False)  # vt (min(N, D), D), rows by variance
    return x @ vt[:n_components].T  # (N, n_components)
    ### END SOLUTION


# %%
check_here(4, globals(), "pca_project")

# %% [markdown]
# `minitf.plots.pca_2d` is the reference (it also returns the share of the variance each
# direction explains) and `plots.plot_embeddings_pca` draws one map per matrix. We map
# the ten digits (`+` and `=` do a different job and would take over the picture), and
# join them in the order 0, 1, ..., 9.

# %%
maps = {"untrained (init_params, key 0)": embed_init[DIGITS],
        "trained on 3-digit addition": embed_trained[DIGITS]}  # each (10, D)
fig = plots.plot_embeddings_pca(maps, [str(d) for d in DIGITS],
                                title="The ten digit embeddings, 2-D PCA: random before "
                                "training, in order of value after it")
for ax, matrix in zip(fig.axes, maps.values(), strict=True):
    coords, _ = plots.pca_2d(matrix)  # (10, 2), the same projection the panel shows
    ax.plot(coords[:, 0], coords[:, 1], color="tab:gray", lw=0.8, alpha=0.7)
course.save_figure(fig, "04_embeddings_pca.png")

# %% [markdown]
# ## Measuring the order
#
# A picture can fool the eye, and ten random points sometimes look like a line. Three
# numbers, each computed for the trained matrix, the untrained one, and `N_RANDOM` fresh
# random matrices (what "no structure" looks like):
#
# - **nearest-neighbour gap**: for each digit, find the other digit with the most similar
#   vector and take `|i - j|`; average over digits. 1 means every digit's nearest
#   neighbour is next to it in value; for random vectors it is `3.67` on average.
# - **similarity vs distance**: the correlation, over all pairs of digits, between the
#   cosine similarity and `|i - j|`. Negative means closer in value, more alike.
# - **order along PC1**: `|correlation|` between the digit's value and its coordinate
#   along the first principal direction.

# %%
def order_measures(embed_matrix: np.ndarray) -> dict[str, float]:
    """How strongly the ten digit rows of an embedding follow digit order."""
    digit_vectors = np.asarray(embed_matrix)[DIGITS]  # (10, D)
    cos = np.array(cosine_similarity_matrix(digit_vectors))  # (10, 10), a writable copy
    np.fill_diagonal(cos, -np.inf)  # a digit is not its own neighbour
    gap = np.abs(DIGITS - cos.argmax(axis=1)).mean()
    pairs = np.triu_indices(10, k=1)  # each pair of different digits once
    distance = np.abs(DIGITS[:, None] - DIGITS[None, :])  # (10, 10): |i - j|
    similarity_vs_distance = np.corrcoef(cos[pairs], distance[pairs])[0, 1]
    pc1 = plots.pca_2d(digit_vectors)[0][:, 0]  # (10,)
    return {"nearest-neighbour gap": float(gap),
            "similarity vs distance": float(similarity_vs_distance),
            "|order along PC1|": float(abs(np.corrcoef(DIGITS, pc1)[0, 1]))}


rng = np.random.default_rng(0)
random_tables = rng.normal(0.0, 0.02, (N_RANDOM, 10, config.d_model))  # like init_params
random_measures = [order_measures(table) for table in random_tables]
measures = {"untrained": order_measures(embed_init), "trained": order_measures(embed_trained),
            "trained unembed": order_measures(np.asarray(model.unembed_matrix(params, config)))}
print(f"{'':24}{'random (mean +- sd)':>22}{'untrained':>11}{'trained':>9}{'unembed':>9}")
for name in measures["trained"]:
    values = np.array([m[name] for m in random_measures])  # (N_RANDOM,)
    print(f"{name:24}{values.mean():>14.2f} +- {values.std():.2f}"
          f"{measures['untrained'][name]:>11.2f}{measures['trained'][name]:>9.2f}"
          f"{measures['trained unembed'][name]:>9.2f}")
gaps = np.array([m["nearest-neighbour gap"] for m in random_measures])
as_ordered = float((gaps <= measures["trained"]["nearest-neighbour gap"]).mean())
print(f"random matrices with a gap as small as the trained one: {as_ordered:.1%}")

# %% [markdown]
# Nothing in the loss mentions that 4 lies between 3 and 5. The order appears because it
# is useful: digits close in value behave alike in a sum (they produce the same carry
# more often, their sums land close together), so giving them similar vectors lets the
# rest of the network treat them alike. In the map the digits lie on an arc, in order;
# the arc is why the order along PC1 alone is short of 1.
#
# The last column measures the unembedding, the vectors that *produce* each digit at
# the output. It is far less ordered: its job is to tell the ten answers apart.

# %% [markdown]
# ## Where is each token? Position embeddings
#
# The token embedding says *what* a token is, not *where*. Attention (lesson 5) mixes
# the vectors of the positions a query may see with weights that depend only on the
# vectors themselves: a weighted average over a *set*. Shuffle the earlier tokens and
# the set is the same, so `123+045=` and `321+540=` would look identical to the `=`. GPT-2
# fixes this with a second table, `pos_embed` `(max_len, D)`: one learned vector per
# position, added to the token's vector before the first block (`forward` computes
# `embed[tokens] + pos_embed[:T]`). Now the vector at position 0 says "digit 1, and I am
# the hundreds digit of the first number".
#
# The test: block 0's output at the `=` for the two shuffled problems, with the position
# table as trained and with it replaced by zeros.

# %%
forward_cached = jax.jit(model.forward, static_argnames=("config", "cache"))
shuffled = jnp.asarray([tok.encode("123+045="), tok.encode("321+540=")])  # (2, T): same tokens


def gap_at_last(params_: dict, layer: int) -> float:
    """How much the two problems differ at the last position after block `layer`."""
    _, acts = forward_cached(params_, shuffled, config, cache=True)
    last = acts[f"blocks.{layer}.resid_post"][:, -1]  # (2, D)
    return float(jnp.abs(last[0] - last[1]).max())


no_positions = {**params, "pos_embed": jnp.zeros_like(params["pos_embed"])}
gap_with, gap_without = gap_at_last(params, 0), gap_at_last(no_positions, 0)
gap_without_later = gap_at_last(no_positions, 1)
print(f"'=' after block 0, 123+045= vs 321+540=: differ by up to {gap_with:.2f} with "
      f"positions, {gap_without:.1e} without (after block 1, without: {gap_without_later:.2f})")

# %% [markdown]
# Without positions the two problems are the same to the first block: the difference
# is float rounding. (Block 1 already tells them apart a little: causal attention lets
# position `t` see only `0..t`, so block 0's outputs at the earlier positions depend on
# the order, and block 1 reads those. The first block can't.) Learned position
# vectors are GPT-2's choice; other models add fixed sine waves or rotate the queries
# and keys by an angle that grows with the position (*rotary* embeddings).

# %% [markdown]
# ## The same on real text
#
# Digits in a sum are a small world. Do the vectors of a language model organise
# themselves too? `course.trained_text_model()` is the course's language model (lesson
# 8): 6 blocks, byte-level BPE with 1024 tokens, trained for 400 steps on Python's own
# documentation (once, then cached). Its embedding is `(1024, 64)`. We compare it with
# its own starting point (`init_params`, same key) and look only at tokens the training
# text uses at least 20 times: a token that never occurs keeps its random row. (`␣` is
# a space: BPE learns `␣def`, a word with the space before it.)

# %%
lm = course.trained_text_model()
tok = lm.task.tokenizer
common = lm.task.frequent_tokens(20)  # (n,) ids seen 20+ times in the training text
text_init = np.asarray(jax.jit(model.init_params, static_argnums=0)(
    lm.config, jax.random.key(lm.seed))["embed"])  # (V, D) where training started
text_trained = np.asarray(lm.params["embed"])  # (V, D)
print(f"{len(common)} of {tok.vocab_size} tokens occur 20+ times; nearest by cosine:")
# words that are single tokens of this vocabulary (BPE may have split some in two)
looked_at = [w for w in (" def", "3", " True", " list", " The", " import")
             if len(tok.encode(w)) == 1][:5]
for word in looked_at:
    i = tok.token_id(word)
    for name, matrix in (("before", text_init), ("after", text_trained)):
        near = token_groups.nearest_by_cosine(matrix, i, 5, common)
        print(f"  {tok.display(i):>6} {name:>6}: "
              + "  ".join(f"{tok.display(j)} {c:.2f}" for j, c in near))

# %% [markdown]
# Before training the neighbours are arbitrary, with cosines near 0 (random vectors in
# 64 dimensions). After it, ` list` sits among ` tuple`, ` sequence` and ` number`, a
# digit among digits, ` True` beside ` None`. A few neighbours are no proof, so we
# measure groups of tokens that a person would call related
# (`token_groups.token_groups`: digits, Python keywords, built-in type names, sentence
# punctuation, capitalised words) with two numbers: the mean cosine over pairs inside
# the group against random pairs of common tokens (random pairs drawn 200 times: their
# mean and its spread), and the share of the group whose nearest neighbour is in the
# group against the share chance gives.

# %%
groups = token_groups.token_groups(tok, common)
text_scores = {name: {when: token_groups.group_similarity(matrix, {name: ids}, common)[name]
                      for when, matrix in (("before", text_init), ("after", text_trained))}
               for name, ids in groups.items()}  # fmt: skip
print(f"{'group':18}{'n':>3}  {'inside before':>13} {'random':>7}  {'inside after':>12} "
      f"{'random':>7} {'z':>6}  {'neighbour in group (chance)':>27}")
for name, ids in groups.items():
    b, a = text_scores[name]["before"], text_scores[name]["after"]
    print(f"{name:18}{len(ids):>3}  {b.within:>+13.3f} {b.random:>+7.3f}  {a.within:>+12.3f} "
          f"{a.random:>+7.3f} {a.z:>6.0f}  {a.neighbour_in_group:>18.0%} ({a.chance:.1%})")
for name, ids in groups.items():
    print(f"  {name}: {' '.join(tok.display(i) for i in ids[:12])}")

shown = [i for ids in groups.values() for i in ids[:8]]  # up to 8 tokens per group
kinds = [name for name, ids in groups.items() for _ in ids[:8]]
fig = plots.plot_embeddings_pca({"untrained (init_params)": text_init[shown],
                                 "trained on Python's docs": text_trained[shown]},
                                [tok.display(i) for i in shown], groups=kinds,
                                title="A language model's token embeddings, 2-D PCA: related "
                                "tokens are scattered at random before training, grouped after")
course.save_figure(fig, "04_text_embeddings_pca.png")
plt.close(fig)

# %% [markdown]
# Every group starts out no more alike than random pairs (within three of the random
# baseline's standard deviations, `z`). After training, digits, keywords, type names and
# punctuation are far more alike: their pairs' mean cosine rises to 0.3-0.75 while
# random pairs stay near 0. The digits are the tightest group, and every digit's nearest
# neighbour is another digit: they occur in the same places (numbers, versions,
# examples). Capitalised words barely move (0.1-0.2, two or three `z`, depending on the
# seed): ` The` and ` Python` share a capital letter, not a job. Being in one group does
# not make two tokens each other's nearest neighbours (other tokens used alike sit
# between them), except for the digits. A 2-D map shows some of it (the digits in a
# corner) but loses most of 64 dimensions; trust the numbers. Nothing in the loss says
# "these are keywords": tokens that are used alike get vectors that are alike, because
# that lets everything after the embedding treat them alike.

# %% [markdown]
# ## What you should see
#
# | quantity | value |
# |---|---|
# | one-hot @ embed vs lookup | equal (max difference < 1e-6) |
# | embedding rows with a gradient from `123+045=` | the 8 tokens in it, not `6 7 8 9` |
# | untrained off-diagonal cosines | about 0 +- 1/sqrt(64) = 0.125 (std 0.08-0.18) |
# | nearest-neighbour gap: random matrices / trained | about 3.7 / about 1 (at most 1.5) |
# | similarity vs distance: random / trained | about 0 / about -0.8 (below -0.6) |
# | order along PC1, trained | about 0.8-0.9 (above 0.7) |
# | random matrices with a gap as small as the trained one | under 1% |
# | block 0 at `=`: `123+045=` vs `321+540=`, with `pos_embed` | differ (> 0.1) |
# | ... without `pos_embed`: after block 0 / after block 1 | equal (< 1e-4) / differ (> 1e-3) |
# | text model, before training: inside a group vs random pairs, each group | within 3 z |
# | text model, trained: inside minus random, digits to punctuation | 0.3-0.75 (> 0.15, z > 3) |
# | text model, after training: inside minus random, capitalised words | 0.1-0.2 (> 0.05) |
# | text model, after training: digits inside minus random | about 0.75 (above 0.4) |
# | text model, after training: digits whose nearest neighbour is a digit | 100% (at least 80%) |
#
# Checked below.

# %%
random_mean = {name: float(np.mean([m[name] for m in random_measures]))
               for name in measures["trained"]}
assert lookup_diff < 1e-6
assert set(rows_touched) == set("123+045=")
assert abs(off_diagonal.mean()) < 0.05 and 0.08 < off_diagonal.std() < 0.18
assert 3.3 < random_mean["nearest-neighbour gap"] < 4.0
assert measures["trained"]["nearest-neighbour gap"] <= 1.5
assert abs(random_mean["similarity vs distance"]) < 0.05
assert measures["trained"]["similarity vs distance"] < -0.6
assert measures["trained"]["|order along PC1|"] > 0.7
assert as_ordered < 0.01
assert gap_with > 0.1 and gap_without < 1e-4 and gap_without_later > 1e-3, (
    gap_with, gap_without, gap_without_later)
assert len(groups) == 5, list(groups)
for name in groups:
    b, a = text_scores[name]["before"], text_scores[name]["after"]
    assert abs(b.z) < 3, (name, b)
    if name == "capitalised words":  # the loosest group: a capital letter is not a job
        assert a.within - a.random > 0.05, (name, a)
    else:
        assert a.within - a.random > 0.15 and a.z > 3, (name, a)
assert text_scores["digits"]["after"].within - text_scores["digits"]["after"].random > 0.4
assert text_scores["digits"]["after"].neighbour_in_group >= 0.8
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/model.py`: `init_params` makes `embed` `(V, D)` and `pos_embed`
#   `(max_len, D)`; `forward` starts with the lookup
#   `jnp.take(params["embed"], tokens, axis=0) + params["pos_embed"][None, :T]`;
#   `unembed_matrix` is the other end (lesson 6).
# - `minitf/plots.py`: `pca_2d` and `plot_embeddings_pca`.
# - `minitf/vectors.py`: `nearest_tokens`, the nearest-token question for any vector.
# - `minitf/token_groups.py`: `token_groups`, `nearest_by_cosine` and `group_similarity`
#   (the text model's groups against random pairs); `minitf/text.py`: `frequent_tokens`.
# - `minitf/surgery.py`: adding a token means adding a row to this table.
