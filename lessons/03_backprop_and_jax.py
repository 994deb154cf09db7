# %% [markdown]
# # Lesson 3: Backpropagation and JAX
#
# **Goal:** compute a gradient by hand with the chain rule, write the backward pass of a
# linear layer, softmax cross-entropy and layer norm yourself and check it against
# `jax.grad` and finite differences; then learn the three JAX tools the rest of the
# course leans on: `jax.grad` on a whole model (a tree of gradients, by name), `jax.jit`
# (and why it wants fixed shapes), and `jax.vmap`.
#
# Training a model means nudging each of its numbers in the direction that lowers the
# loss. That direction is the *gradient*, one partial derivative per parameter.
# *Backpropagation* computes all of them in one backward sweep through the computation,
# at the cost of about two forward passes; every lesson after this one gets its
# gradients from `jax.grad`, which does exactly that. See *backpropagation*, *gradient*,
# *finite differences* and *jit* in the [glossary](../docs/glossary.md).

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from minitf import course, model, tasks
from minitf.course.check import check_here
from minitf.train import loss_fn

course.setup_matplotlib()
QUICK = course.quick_mode()

# %% [markdown]
# ## The chain rule on a tiny graph
#
# Take `L = (a * b + a) ** 2` at `a = 2`, `b = -3`, written one operation per line so
# each intermediate value has a name:
#
#     c = a * b      # -6
#     d = c + a      # -4
#     L = d ** 2     # 16
#
# Backward, from the end: start with `dL/dL = 1` and, at each operation, multiply the
# gradient that arrives by that operation's *local* derivative. `d ** 2` has derivative
# `2 d`, so `dL/dd = -8`. `c + a` passes the gradient unchanged to both inputs. `a * b`
# sends `b` times the gradient to `a`, and `a` times it to `b`. And `a` is used twice
# (in `c` and in `d`): its gradient is the *sum* over both paths. That sum is the whole
# trick: a value used in several places collects the gradient of every use.

# %%
a, b = 2.0, -3.0
c = a * b
d = c + a
loss = d**2
dL_dd = 2 * d  # d(d^2)/dd
dL_dc = dL_dd * 1.0  # d = c + a
dL_da = dL_dd * 1.0 + dL_dc * b  # two paths: directly into d, and through c = a * b
dL_db = dL_dc * a
print(f"forward:  c = {c}, d = {d}, L = {loss}")
print(f"backward: dL/dd = {dL_dd}, dL/dc = {dL_dc}, dL/da = {dL_da}, dL/db = {dL_db}")


def tiny_graph(a: float, b: float) -> float:
    return (a * b + a) ** 2


by_jax = jax.grad(tiny_graph, argnums=(0, 1))(a, b)  # d/da and d/db at once
print("jax.grad:", [float(g) for g in by_jax])

# %% [markdown]
# `jax.grad(f)` returns a new function that computes the gradient of `f` with respect
# to its first argument (`argnums` picks others). It records the operations `f` does
# and runs them backward, exactly as above.
#
# ## A linear layer and softmax cross-entropy, backward by hand
#
# A classifier in two lines: `logits = x @ w + bias`, then the mean *cross-entropy*
# `-log softmax(logits)[target]` over `N` examples. Its backward pass has two pieces.
#
# **Cross-entropy.** For one row, `-log p_y = -z_y + log sum_j exp(z_j)`. Differentiate
# by `z_i`: `-[i = y] + exp(z_i) / sum_j exp(z_j)`, that is `p_i - onehot_i`. The
# gradient pushes down every wrong token by its probability and pulls up the right one
# by `1 - p_y`. The mean over `N` rows divides by `N`.
#
# ### Exercise 1: `cross_entropy_backward`
# Given `logits` `(N, V)` and integer `targets` `(N,)`, return the gradient of the *mean*
# cross-entropy with respect to the logits, `(N, V)`. Don't call `jax.grad`.

# %%
def cross_entropy_backward(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """d mean(-log softmax(logits)[targets]) / d logits. [N, V], [N] -> [N, V]"""
    ### BEGIN SOLUTION
    probs = jax.nn.softmax(logits, axis=-1)  # (N, V)
    one_hot = jax.nn.one_hot(targets, logits.shape[-1])  # (N, V)
    return (probs - one_hot) / logits.shape[0]  # (N, V)
    ### END SOLUTION


# %%
check_here(3, globals(), "cross_entropy_backward")

# %% [markdown]
# **A linear layer.** `out = x @ w + bias`, shapes `(N, I) @ (I, O) + (O,)`. Given the
# gradient `d_out` `(N, O)` arriving from above, each entry `out[n, o] = sum_i x[n, i]
# w[i, o] + bias[o]` tells you where it goes:
#
# - `w[i, o]` is used in every row `n`, multiplied by `x[n, i]`: `dw = x.T @ d_out`;
# - `bias[o]` is added to every row: `dbias = d_out.sum(axis=0)` (a sum, again, over uses);
# - `x[n, i]` meets every `w[i, o]`: `dx = d_out @ w.T`, which the layer below needs.
#
# Check the shapes: each gradient has the shape of what it is the gradient of.
#
# ### Exercise 2: `linear_backward`
# Return `(dx, dw, dbias)` for `out = x @ w + bias`, given `x` `(N, I)`, `w` `(I, O)` and
# `d_out` `(N, O)`.

# %%
def linear_backward(x: jax.Array, w: jax.Array,
                    d_out: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gradients of a linear layer. [N, I], [I, O], [N, O] -> [N, I], [I, O], [O]"""
    ### BEGIN SOLUTION
    return d_out @ w.T, x.T @ d_out, d_out.sum(axis=0)  # (N, I), (I, O), (O,)
    ### END SOLUTION


# %%
check_here(3, globals(), "linear_backward")

# %% [markdown]
# ## Layer norm, backward
#
# Every block of a transformer normalizes its input (lesson 6 says why): `y = (x -
# mean(x)) / sigma` over the `D` entries of each vector, with `sigma = sqrt(var(x) +
# eps)`. Its backward pass is the one place where a vector's entries talk to each other:
# moving one `x_i` moves the mean and the variance, and so every `y_j`. Working it
# through (the mean and variance each contribute one term) gives, per vector,
#
#     dx = (dy - mean(dy) - y * mean(dy * y)) / sigma
#
# The two subtracted terms remove from `dy` what the normalization undoes anyway: a
# shift of all entries (the mean) and a stretch along `y` itself (the scale).
#
# ### Exercise 3: `layer_norm_backward`
# Given `x` `(N, D)` and `d_out` `(N, D)`, return `dx` for `y = (x - mean) / sqrt(var +
# model.LN_EPS)` (no scale or bias), each row normalized on its own.

# %%
def layer_norm_backward(x: jax.Array, d_out: jax.Array) -> jax.Array:
    """Gradient of layer norm (without scale and bias). [N, D], [N, D] -> [N, D]"""
    ### BEGIN SOLUTION
    mean = x.mean(axis=-1, keepdims=True)  # (N, 1)
    sigma = jnp.sqrt(x.var(axis=-1, keepdims=True) + model.LN_EPS)  # (N, 1)
    y = (x - mean) / sigma  # (N, D)
    centred = d_out - d_out.mean(axis=-1, keepdims=True)  # (N, D)
    return (centred - y * (d_out * y).mean(axis=-1, keepdims=True)) / sigma  # (N, D)
    ### END SOLUTION


# %%
check_here(3, globals(), "layer_norm_backward")

# %% [markdown]
# ## A whole backward pass, by hand
#
# Chain the three: `loss = cross_entropy(layer_norm(x) @ w + bias, targets)`. The
# backward pass runs the pieces in reverse order, each handing its input gradient to the
# piece before it. Compare every gradient with `jax.grad` of the same loss.

# %%
N, I, V = 32, 16, 10  # examples, input width, classes
kx, kw, kt = jax.random.split(jax.random.key(0), 3)
x = 2.0 + 3.0 * jax.random.normal(kx, (N, I))  # (N, I): off-centre, wide: layer norm matters
w = jax.random.normal(kw, (I, V)) / np.sqrt(I)  # (I, V)
bias = jnp.zeros(V)  # (V,)
targets = jax.random.randint(kt, (N,), 0, V)  # (N,)


def normalized(x_: jax.Array) -> jax.Array:
    return model.layer_norm(x_, {"scale": jnp.ones(I), "bias": jnp.zeros(I)})  # (N, I)


def classifier_loss(x_: jax.Array, w_: jax.Array, bias_: jax.Array) -> jax.Array:
    logits = normalized(x_) @ w_ + bias_  # (N, V)
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # (N, V)
    return -jnp.take_along_axis(log_probs, targets[:, None], axis=-1).mean()


# forward, keeping what the backward pass needs
h = normalized(x)  # (N, I)
logits = h @ w + bias  # (N, V)
# backward, in reverse order
d_logits = cross_entropy_backward(logits, targets)  # (N, V)
d_h, d_w, d_bias = linear_backward(h, w, d_logits)  # (N, I), (I, V), (V,)
d_x = layer_norm_backward(x, d_h)  # (N, I)

auto = jax.grad(classifier_loss, argnums=(0, 1, 2))(x, w, bias)
by_hand_error = {name: float(jnp.abs(mine - theirs).max())
                 for name, mine, theirs in zip(["x", "w", "bias"], [d_x, d_w, d_bias], auto,
                                               strict=True)}  # fmt: skip
print("largest difference from jax.grad:", {k: f"{v:.1e}" for k, v in by_hand_error.items()})

# %% [markdown]
# ## Finite differences: a check that needs no calculus
#
# A derivative is a limit: `(f(w + h) - f(w - h)) / (2 h)` for a small step `h` (the
# *central difference*; its error shrinks like `h^2`). It needs no backward pass at all,
# which makes it the independent check every autodiff library is tested with. But it
# costs two evaluations of the loss *per parameter*: for the 102,400 parameters of the
# small addition model below, 204,800 forward passes for one gradient, where
# backpropagation costs about two. And `h` can't be too small: `f(w + h) - f(w - h)` subtracts two
# nearly equal numbers, and float32 keeps only about 7 significant digits.
#
# Below: the error of the central difference for a few entries of `w`, against the exact
# gradient, for many step sizes, in float32 and float64 (the loss re-written in numpy so
# it can run in either precision).

# %%
def classifier_loss_np(w_: np.ndarray, dtype: type) -> float:
    """`classifier_loss` at (x, w_, bias) in numpy, every step in `dtype`."""
    xs = np.asarray(x, dtype)
    centred = xs - xs.mean(-1, keepdims=True)
    hs = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + dtype(model.LN_EPS))
    z = hs @ w_.astype(dtype)  # (N, V); bias is 0
    z = z - z.max(-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-log_probs[np.arange(N), np.asarray(targets)].mean(dtype=dtype))


entries = [(0, 0), (3, 7), (15, 2), (8, 9)]  # which w[i, o] to check
# the exact gradient, by the formulas of exercises 1 and 2 in float64 numpy
x64 = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(-1, keepdims=True)
h64 = x64 / np.sqrt((x64**2).mean(-1, keepdims=True) + model.LN_EPS)  # (N, I)
z64 = h64 @ np.asarray(w, np.float64)  # (N, V)
p64 = np.exp(z64 - z64.max(-1, keepdims=True))
p64 /= p64.sum(-1, keepdims=True)  # (N, V): softmax
exact = h64.T @ ((p64 - np.eye(V)[np.asarray(targets)]) / N)  # (I, V)
steps = np.logspace(-10, -0.5, 40)  # (n_steps,) values of h
fd_error = {}
for dtype in (np.float32, np.float64):
    errors = []
    for step in steps:
        worst = 0.0
        for i, o in entries:
            plus, minus = np.asarray(w, np.float64), np.asarray(w, np.float64)
            plus[i, o] += step
            minus[i, o] -= step
            fd = (classifier_loss_np(plus, dtype) - classifier_loss_np(minus, dtype)) / (2 * step)
            worst = max(worst, abs(fd - exact[i, o]))
        errors.append(worst)
    fd_error[dtype.__name__] = np.array(errors)  # (n_steps,)
    best = int(np.argmin(fd_error[dtype.__name__]))
    print(f"{dtype.__name__}: smallest error {fd_error[dtype.__name__][best]:.1e} "
          f"at h = {steps[best]:.0e}")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
for name, errors in fd_error.items():
    ax.loglog(steps, np.maximum(errors, 1e-16), marker=".", label=name)
ax.set_xlabel("step h of the central difference")
ax.set_ylabel("largest |finite difference - exact gradient|")
ax.legend()
ax.set_title("Finite differences: a large step errs, a tiny one drowns in rounding")
course.save_figure(fig, "03_finite_differences.png")

# %% [markdown]
# Both curves are V-shaped: on the right the `h^2` error of the formula, on the left
# rounding error, which grows like `1 / h`. float64 gets to about 1e-11 near `h = 1e-5`;
# float32 bottoms out around 1e-5 near `h = 1e-2`, a million times worse. So compare
# float32 gradients with finite differences at a moderate step and a loose tolerance
# (minitf's tests use `jax.test_util.check_grads`, which does this).
#
# ## `jax.grad` on a whole model: a tree of gradients
#
# minitf's parameters are a nested dict of arrays (a *pytree*). `jax.grad` of a loss
# returns a tree of the same shape: one gradient array per parameter array, under the
# same name. Here, for a fresh addition model and one batch of `minitf.train.loss_fn`
# (which also returns the accuracy, hence `has_aux=True`):

# %%
task = tasks.addition(3)
config = tasks.config_for(task, **tasks.train_defaults(task)[0])
params = jax.jit(model.init_params, static_argnums=0)(config, jax.random.key(0))
batch_tokens, batch_mask = task.batch(np.random.default_rng(0), 64)  # (B, T), (B, T)
grad_fn = jax.jit(jax.grad(loss_fn, has_aux=True), static_argnums=3)
grads, accuracy = grad_fn(params, batch_tokens, batch_mask, config)
for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    norm = float(jnp.linalg.norm(g))
    print(f"{jax.tree_util.keystr(path):34} {str(g.shape):12} |grad| = {norm:.4f}")
print("same tree as params:", jax.tree.structure(grads) == jax.tree.structure(params),
      f"({model.count_params(params):,} numbers)")
last_position = float(jnp.abs(grads["pos_embed"][config.max_len - 1]).max())
print(f"largest gradient in the last position's row of pos_embed: {last_position}")

# %% [markdown]
# Read it like the model: `grads["blocks"][0]["attn"]["w_qkv"]` is the gradient of the
# loss for the first block's query-key-value matrix, and so on. One row is exactly zero:
# `pos_embed`'s last row. (`pos_embed` holds one learned vector per position, added to
# each token's embedding so that the model knows where each token is; lesson 4 explains
# it.) The model reads `tokens[:, :-1]` (the last token has nothing after it to
# predict), so the last position's vector is never used, and a parameter that is never
# used gets no gradient.
#
# ## `jax.jit` compiles for one shape at a time
#
# `jax.jit(f)` traces `f` once with abstract arrays (only shapes and dtypes, no values),
# hands the whole computation to the XLA compiler, and reuses the compiled program for
# every later call *with the same shapes and dtypes*. A new shape means a new trace and
# a new compilation. The Python body of a jitted function runs only while tracing, so a
# counter in it counts the compilations. Two loops over the same batch cut to lengths 2,
# 3, ..., 12 tokens: one passes each cut as it is, the other keeps all 12 tokens and
# masks the extra ones out of the loss.

# %%
traces = {"as they are": 0, "padded": 0}


def next_token_loss(params_: dict, tokens_: jax.Array, scored: jax.Array,
                    which: str) -> jax.Array:
    """Mean next-token loss over the `scored` [B, T-1] predictions of `tokens_` [B, T]."""
    traces[which] += 1  # Python runs this line only while jit traces a new shape
    logits_ = model.forward(params_, tokens_[:, :-1], config)  # (B, T-1, V)
    log_probs = jax.nn.log_softmax(logits_, axis=-1)  # (B, T-1, V)
    nll = -jnp.take_along_axis(log_probs, tokens_[:, 1:, None], axis=-1)[..., 0]  # (B, T-1)
    return (nll * scored).sum() / scored.sum()


jitted = jax.jit(next_token_loss, static_argnames="which")
full = jnp.asarray(batch_tokens)  # (B, 12)
B, T_full = full.shape
lengths = range(2, T_full + 1)
seconds, losses = {}, {}
for which in traces:
    per_call, values = [], []
    for length in lengths:
        if which == "padded":  # always (B, 12); predictions past `length` are not scored
            tokens_ = full  # (B, 12)
            scored = jnp.broadcast_to(jnp.arange(T_full - 1) < length - 1, (B, T_full - 1))
        else:  # (B, length): a new shape every call
            tokens_, scored = full[:, :length], jnp.ones((B, length - 1), bool)
        start = time.perf_counter()
        values.append(float(jitted(params, tokens_, scored, which)))
        per_call.append(time.perf_counter() - start)
    seconds[which], losses[which] = np.array(per_call), np.array(values)  # (11,) each
    print(f"{which:>12}: {traces[which]} compilations, {seconds[which].sum():.2f} s in all, "
          f"median call {1e3 * np.median(seconds[which]):.1f} ms")
padding_error = float(np.abs(losses["padded"] - losses["as they are"]).max())
print(f"same losses either way: largest difference {padding_error:.1e}")

fig, ax = plt.subplots(figsize=course.FIGSIZE)
for which, per_call in seconds.items():
    ax.semilogy(list(lengths), 1e3 * per_call, marker="o", label=which)
ax.set_xlabel("tokens in the batch's sequences (one call each, in this order)")
ax.set_ylabel("time of the call (ms, log scale)")
ax.legend()
ax.set_title("A new shape is a new compilation: pad to one shape and jit compiles once")
course.save_figure(fig, "03_jit_recompiles.png")

# %% [markdown]
# That is why minitf's tasks give every problem the same length, why `train` draws
# batches of one fixed size, and why generation (lesson 9) writes into a fixed-size
# cache instead of growing an array: each step reuses one compiled program. (Inside a
# jitted function, Python sees only shapes, so an `if` on an array's *value* fails;
# `jnp.where` computes both branches and picks per element instead.)
#
# ## `jax.vmap`: write it for one example, run it for a batch
#
# `jax.vmap(f)` turns a function written for one example into one that maps it over a
# leading batch axis, without a Python loop (it rewrites the computation, as `jit` does).
# The classic use: *per-example* gradients, one gradient tree per problem, which a
# batched loss can't give you (its gradient is already the average). The loss of one
# problem is `loss_fn` on a batch of one; vmap it over the batch:

# %%
def one_problem_grad(params_: dict, tokens_: jax.Array, mask_: jax.Array) -> dict:
    """The gradient tree of the loss of one problem. [T], [T] -> params-shaped tree"""
    return jax.grad(lambda p: loss_fn(p, tokens_[None], mask_[None], config)[0])(params_)


per_example = jax.jit(jax.vmap(one_problem_grad, in_axes=(None, 0, 0)))(
    params, batch_tokens, batch_mask)  # every leaf gets a leading axis of B  # fmt: skip
print("per-example w_qkv gradients:", per_example["blocks"][0]["attn"]["w_qkv"].shape)
# every problem has the same number of scored tokens, so the batch loss is the mean of
# the problems' losses, and its gradient the mean of theirs
mean_of_examples = jax.tree.map(lambda g: g.mean(axis=0), per_example)
vmap_error = max(float(jnp.abs(m - g).max())
                 for m, g in zip(jax.tree.leaves(mean_of_examples), jax.tree.leaves(grads),
                                 strict=True))  # fmt: skip
norms = np.sqrt(sum(np.asarray(jnp.sum(g**2, axis=tuple(range(1, g.ndim))))
                    for g in jax.tree.leaves(per_example)))  # (B,): one norm per problem
print(f"mean of the per-example gradients vs the batch gradient: {vmap_error:.1e}")
print(f"gradient norm per problem: min {norms.min():.2f}, median {np.median(norms):.2f}, "
      f"max {norms.max():.2f}")

# %% [markdown]
# (minitf's own model code is written for one sequence and lets leading axes stand for
# the batch, which is faster on a CPU than `vmap` over sequences; see `minitf/model.py`.)
#
# ## What you should see
#
# | quantity | value |
# |---|---|
# | the tiny graph: dL/da, dL/db | 16, -16 (by hand and `jax.grad` alike) |
# | by-hand backward pass vs `jax.grad` (x, w, bias) | equal (differences < 1e-5) |
# | central difference, best error: float64 | about 1e-11 (below 1e-9) |
# | central difference, best error: float32 | about 1e-5 (1e-7 to 1e-3) |
# | the float32 curve's best step | larger than the float64 curve's |
# | gradient tree | the same structure as `params` (102,400 numbers) |
# | gradient of `pos_embed`'s last row | exactly 0 |
# | lengths 2..12 as they are / padded | 11 compilations / 1, the first loop slower, same losses |
# | mean of per-example gradients vs batch gradient | equal (< 1e-5) |
#
# Checked below.

# %%
assert (dL_da, dL_db) == (16.0, -16.0) and [float(g) for g in by_jax] == [16.0, -16.0]
assert max(by_hand_error.values()) < 1e-5, by_hand_error
best64, best32 = fd_error["float64"].min(), fd_error["float32"].min()
assert best64 < 1e-9 and 1e-7 < best32 < 1e-3, (best64, best32)
assert steps[np.argmin(fd_error["float32"])] > steps[np.argmin(fd_error["float64"])]
assert jax.tree.structure(grads) == jax.tree.structure(params) and last_position == 0.0
assert model.count_params(params) == 102_400
assert traces == {"as they are": 11, "padded": 1}, traces
assert padding_error < 1e-5, padding_error
assert seconds["as they are"].sum() > 2 * seconds["padded"].sum(), seconds
assert vmap_error < 1e-5, vmap_error
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/train.py`: `loss_fn` (the loss `jax.grad` differentiates), `make_step` (the
#   gradient, clipping and optimizer update in one jitted call; lesson 7 has you write
#   it).
# - `minitf/model.py`: `layer_norm`, `linear` and the rest of the forward pass; JAX
#   writes their backward passes.
# - `tests/test_model.py`: the model's gradients against finite differences
#   (`jax.test_util.check_grads`).
#
# ## Further reading
#
# - 3Blue1Brown, *Neural networks* (videos; chapter 3, "What is backpropagation really
#   doing?"): https://www.youtube.com/watch?v=Ilg3gGewQ5U
# - Andrej Karpathy, *micrograd* and the video that builds it:
#   https://github.com/karpathy/micrograd, https://www.youtube.com/watch?v=VMj-3S1tku0
# - Jay Alammar, *The Illustrated Transformer*:
#   https://jalammar.github.io/illustrated-transformer/
# - The JAX documentation, *Automatic differentiation*:
#   https://docs.jax.dev/en/latest/automatic-differentiation.html
