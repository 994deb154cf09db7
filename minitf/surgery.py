"""Vocabulary surgery: give a trained model new tokens, teach only them, or widen it.

A token is two rows: one in the embedding (how the model reads it) and one in the
unembedding (how strongly each residual vector predicts it; the same row when tied).
`add_tokens` appends rows for new tokens and extends the tokenizer to match. How the new
rows start matters:

- "mean": the mean of the existing rows. The new token's logit is then the mean of the
  other logits, so by Jensen's inequality its probability is at most 1/V and the model's
  old predictions barely move (KL <= log(1 + 1/V); Hewitt, "Initializing new word
  embeddings for pretrained language models", 2021).
- "random": N(0, 0.02), like `init_params`. Its logit is an unrelated random number.
- a linear combination of existing tokens, e.g. {"monkey": 0.5, "hat": 0.5}: start from
  what the model already knows about the parts.

`finetune` then trains either everything or only chosen rows of the embedding and
unembedding, with every other number frozen bit for bit (the optimizer's updates are
masked, weight decay included). `widen` grows d_model with new dimensions that start at
zero, preserving the model's output up to the layer norms' epsilon; with `noise_std` the
entries that only *read* the new dimensions start random instead, which keeps the output
and lets fine-tuning put the new dimensions to use.

Left out: removing tokens, resizing the position embedding, and growing d_mlp or the
number of layers (zero-initialised MLP units or blocks would preserve the output too).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from minitf.model import INIT_STD, Config, Params
from minitf.tokens import TokenizerLike
from minitf.train import TrainConfig, loss_fn, make_optimizer, make_step

Init = str | Mapping[str | int, float]  # "mean", "random", or {token: weight, ...}


# --- tokenizers ----------------------------------------------------------------------------


def token_id(tokenizer: TokenizerLike | None, token: str | int) -> int:
    """The id of one existing token, given as an id or as its text ("horse", "Ġhat", " hat")."""
    if isinstance(token, int | np.integer):
        return int(token)
    if tokenizer is None:
        raise ValueError(f"token {token!r} is given as text but there is no tokenizer; use its id")
    return tokenizer.token_id(token)


# --- new rows ------------------------------------------------------------------------------


def _new_row(matrix: jax.Array, init: Init, tokenizer: TokenizerLike | None,
             key: jax.Array | None) -> jax.Array:  # fmt: skip
    """One new row for `matrix` (V, D) under `init`. -> (D,)"""
    if isinstance(init, str) and init == "mean":
        return matrix.mean(axis=0)  # (D,)
    if isinstance(init, str) and init == "random":
        if key is None:
            raise ValueError('init="random" needs a key: add_tokens(..., key=jax.random.key(0))')
        return INIT_STD * jax.random.normal(key, (matrix.shape[1],), matrix.dtype)  # (D,)
    if isinstance(init, Mapping) and init:
        ids = jnp.array([token_id(tokenizer, t) for t in init])  # (n,)
        if int(ids.max()) >= matrix.shape[0] or int(ids.min()) < 0:
            raise ValueError(f"token ids {ids.tolist()} must be existing ids < {matrix.shape[0]}")
        weights = jnp.array(list(init.values()), dtype=matrix.dtype)  # (n,)
        return weights @ matrix[ids]  # (D,): sum_i w_i * row_i
    raise ValueError(
        f'init must be "mean", "random" or a non-empty {{token: weight}} dict; got {init!r}'
    )


def add_tokens(
    params: Params,
    config: Config,
    tokenizer: TokenizerLike | None,
    new_tokens: Sequence[str],
    init: Init | Sequence[Init] = "mean",
    *,
    key: jax.Array | None = None,
    special: bool = False,
) -> tuple[Params, Config, TokenizerLike | None]:
    """Append one embedding row (and one unembedding row, unless tied) per new token.

    `init` is one rule for every new token or a list with one rule per token; see the
    module docstring. Ids: the new tokens get config.vocab_size, +1, ... in order.
    `tokenizer` may be None (only the model grows). Returns (params, config, tokenizer).
    The lesson "New tokens" explains the inits; the lesson "When the token doesn't exist"
    adds a token a model is missing.
    """
    new_tokens = list(new_tokens)
    if not new_tokens:
        raise ValueError("new_tokens is empty; give at least one token to add")
    inits = list(init) if isinstance(init, list | tuple) else [init] * len(new_tokens)
    if len(inits) != len(new_tokens):
        raise ValueError(f"got {len(inits)} inits for {len(new_tokens)} new tokens; give one each")
    if tokenizer is not None and tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model {config.vocab_size}; "
            "new ids would not line up. Pass the tokenizer the model was trained with."
        )
    keys = list(jax.random.split(key, len(new_tokens))) if key is not None else [None] * len(inits)
    names = ["embed"] if config.tie_embeddings else ["embed", "unembed"]
    new_params = dict(params)
    for name in names:
        old = params[name]  # (V, D)
        # every rule reads the *old* rows, so adding two "mean" tokens gives them equal rows
        rows = [_new_row(old, rule, tokenizer, k) for rule, k in zip(inits, keys, strict=True)]
        new_params[name] = jnp.concatenate([old, jnp.stack(rows)], axis=0)  # (V + n, D)
    new_config = dataclasses.replace(config, vocab_size=config.vocab_size + len(new_tokens))
    if tokenizer is not None:
        tokenizer = tokenizer.with_tokens(new_tokens, special=special)
    return new_params, new_config, tokenizer


# --- fine-tuning ---------------------------------------------------------------------------


def _keep_rows(row_mask: jax.Array) -> optax.GradientTransformation:
    """Zero every row of a (V, D) update whose `row_mask` entry (V, 1) is False."""

    def update(updates, state, params=None):
        kept = jax.tree.map(lambda u: jnp.where(row_mask, u, 0.0), updates)  # (V, D) leaves
        return kept, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def freeze_all_but_rows(
    optimizer: optax.GradientTransformation,
    params: Params,
    config: Config,
    only_rows: Sequence[int],
) -> optax.GradientTransformation:
    """`optimizer` on rows `only_rows` of embed/unembed alone; every other number frozen.

    Frozen leaves get `optax.set_to_zero` (no optimizer state at all). In the vocabulary
    matrices the old rows are zeroed twice: the gradient before the optimizer, so it
    cannot enter the clipping norm or Adam's moments, and the update after it, because
    AdamW adds `weight_decay * param` to every row and would otherwise shrink the frozen
    ones. The lesson "New tokens" writes the row mask (exercise `keep_only_rows`).
    """
    rows = np.asarray(only_rows, dtype=int)
    if rows.size == 0 or rows.min() < 0 or rows.max() >= config.vocab_size:
        raise ValueError(f"only_rows must be token ids in 0..{config.vocab_size - 1}; got {rows}")
    row_mask = jnp.zeros((config.vocab_size, 1), bool).at[rows].set(True)  # (V, 1)
    labels = {
        name: ("rows" if name in ("embed", "unembed") else jax.tree.map(lambda _: "frozen", leaf))
        for name, leaf in params.items()
    }
    trainable = optax.chain(_keep_rows(row_mask), optimizer, _keep_rows(row_mask))
    return optax.multi_transform({"rows": trainable, "frozen": optax.set_to_zero()}, labels)


def finetune_settings(steps: int, lr: float, weight_decay: float = 0.0) -> TrainConfig:
    """How `finetune` trains: a constant learning rate (no warmup, no decay: the jobs are
    short and new rows start small), Adam's beta2 0.99, gradients clipped at 1."""
    return TrainConfig(steps=max(1, steps), lr=lr, warmup=0, lr_end=lr, beta2=0.99,
                       weight_decay=weight_decay, clip=1.0)  # fmt: skip


_STEPS: dict = {}  # (config, settings, rows, tree structure) -> (optimizer, jitted step)


def _optimizer_and_step(
    params: Params,
    config: Config,
    settings: TrainConfig,
    only_rows: Sequence[int] | None,
) -> tuple[optax.GradientTransformation, Callable]:
    """The optimizer and its jitted step, built once per setting: comparing several inits
    of the same new token (lessons "New tokens" and "When the token doesn't exist") then
    compiles the step once, not per run."""
    rows = None if only_rows is None else tuple(int(r) for r in np.asarray(only_rows).ravel())
    key = (config, settings, rows, jax.tree.structure(params))
    if key not in _STEPS:
        optimizer = make_optimizer(settings)
        if rows is not None:
            optimizer = freeze_all_but_rows(optimizer, params, config, rows)
        step = make_step(functools.partial(loss_fn, config=config), optimizer)
        if len(_STEPS) >= 16:  # a long notebook session: keep only the recent ones
            _STEPS.pop(next(iter(_STEPS)))
        _STEPS[key] = (optimizer, step)
    return _STEPS[key]


@dataclasses.dataclass
class FinetuneResult:
    params: Params
    losses: list[float]  # training loss at every step taken
    steps: int  # steps taken (fewer than asked when `callback` stopped early)


def finetune(
    params: Params,
    config: Config,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    steps: int,
    lr: float = 1e-2,
    only_rows: Sequence[int] | None = None,
    weight_decay: float = 0.0,
    callback: Callable[[int, Params], bool] | None = None,
    check_every: int = 10,
) -> FinetuneResult:
    """Train on `batches` of (tokens [B, T], loss_mask [B, T]) for `steps` steps.

    The batches follow `minitf.tasks`' convention (loss_mask[b, t] True: the prediction
    at t of token t + 1 is scored); `Task.batch` makes them, so does any generator.
    `only_rows=[ids]` trains just those rows of the embedding and unembedding (the new
    tokens); None trains everything. `callback(step, params)` runs every `check_every`
    steps (and at step 0) and stops training by returning True, which is how the
    lessons "New tokens" and "When the token doesn't exist" count the steps a new token
    needs. Settings: `finetune_settings` (constant learning rate, no warmup).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0; got {steps}")
    settings = finetune_settings(steps, lr, weight_decay)
    optimizer, step_fn = _optimizer_and_step(params, config, settings, only_rows)
    opt_state = optimizer.init(params)
    batch_iter: Iterator = iter(batches)
    losses: list[float] = []
    for step in range(steps + 1):
        if callback is not None and step % check_every == 0 and callback(step, params):
            break
        if step == steps:
            break
        tokens, loss_mask = next(batch_iter)
        params, opt_state, loss, _ = step_fn(
            params, opt_state, (jnp.asarray(tokens), jnp.asarray(loss_mask))
        )
        losses.append(float(loss))
    return FinetuneResult(params=params, losses=losses, steps=len(losses))


# --- widening d_model ----------------------------------------------------------------------


def _center(w: jax.Array) -> jax.Array:
    """Remove each row's mean over its last axis (the d_model axis). [..., D] -> [..., D]"""
    return w - w.mean(axis=-1, keepdims=True)  # (..., D)


def _pad(w: jax.Array, axis: int, size: int) -> jax.Array:
    """Zeros appended along `axis` until it has `size` entries."""
    widths = [(0, 0)] * w.ndim
    widths[axis] = (0, size - w.shape[axis])
    return jnp.pad(w, widths)


def _new_slots(n_head: int, K: int, new_n_head: int, new_head: int) -> jax.Array:
    """(H'*K',) bool: True for the slots `_pad_heads` adds (a new head, or past slot K)."""
    slot = jnp.arange(new_n_head * new_head)  # (D',)
    return (slot // new_head >= n_head) | (slot % new_head >= K)


def _pad_heads(w: jax.Array, axis: int, n_head: int, new_head: int, new_n_head: int) -> jax.Array:
    """Pad a (.., H*K, ..) axis to (.., H'*K', ..): each old head keeps its first K slots."""
    shape = w.shape
    K = shape[axis] // n_head
    split = w.reshape(*shape[:axis], n_head, K, *shape[axis + 1 :])  # (.., H, K, ..)
    split = _pad(_pad(split, axis + 1, new_head), axis, new_n_head)  # (.., H', K', ..)
    return split.reshape(*shape[:axis], new_n_head * new_head, *shape[axis + 1 :])  # (.., D', ..)


def widen(
    params: Params,
    config: Config,
    new_d_model: int,
    *,
    n_head: int | None = None,
    preserve: bool = True,
    noise_std: float = 0.0,
    key: jax.Array | None = None,
) -> tuple[Params, Config]:
    """Grow the residual stream from D to D' dimensions; the new ones start at zero.

    Zero padding alone does not keep the output: every LayerNorm takes its mean and
    variance over all D' entries, and the zeros pull both down. `preserve=True` fixes
    the two effects it can:
      1. the mean: first centre everything that writes into the stream (embedding rows,
         position rows, attention and MLP output weights and biases). Every reader of the
         stream is a LayerNorm, which subtracts the mean anyway, so this changes nothing;
         but now the stream's mean is 0 and stays 0 after padding with zeros.
      2. the variance: with mean 0, the variance over D' entries is D/D' times the old
         one, so the normed vector grows by sqrt(D'/D); each LayerNorm's gain shrinks by
         sqrt(D/D') to compensate.
    What is left is the epsilon: LN's sqrt(var + eps) becomes sqrt(var + eps * D'/D), a
    relative change of about eps * (D'/D - 1) / (2 var); an exact copy is impossible.

    A tied embedding is the one writer that cannot be centred: the same rows are read as
    the unembedding, and centring them would shift each logit by its row's mean times
    the sum of the normed vector. Its new entries start at the row's own mean instead of
    zero. Then every new entry of the stream equals the stream's mean, so the mean is
    unchanged, the new entries add nothing to the variance (which again is D/D' times
    the old one), and the normed stream is zero there, so the unembedding's new entries
    add nothing to the logits.

    Heads: with `n_head` None (or equal to config.n_head) every head widens from K to
    D'/H; its queries are scaled by sqrt(K'/K) so the softmax's 1/sqrt(K') matches the old
    1/sqrt(K). With n_head = D' / K the heads keep their width and the new heads start
    at zero (uniform attention over zero values: they add nothing).
    Symmetry, and `noise_std`: with every new entry zero, all new dimensions (and all new
    head slots) start identical and get identical gradients, so fine-tuning moves them in
    lockstep and they act as one dimension, or never move at all. `noise_std > 0` (with a
    `key`) draws N(0, noise_std) for the entries that only read something that is still
    zero: the rows of w_qkv, the MLP's w_in and the unembedding for the new dimensions
    (the normed stream is 0 there), and the new head slots of the queries and values
    (their keys and their rows of w_out stay 0, so the scores and the output are
    unchanged). The output is then the same as without noise, to float32 rounding
    (tests/test_surgery.py: within 1e-5), and the gradients of the new entries differ,
    which breaks the symmetry.
    The lesson "New tokens" measures how close the output stays, with and without
    `preserve`, and what fine-tuning does with the new dimensions with and without noise.
    """
    D, H = config.d_model, config.n_head
    K = config.d_head
    new_n_head = H if n_head is None else n_head
    if new_d_model < D:
        raise ValueError(f"new_d_model ({new_d_model}) must be at least d_model ({D})")
    if new_n_head == H and new_d_model % H == 0:
        new_head = new_d_model // H  # K'
    elif new_n_head * K == new_d_model:
        new_head = K
    else:
        raise ValueError(
            f"widening {D} -> {new_d_model} needs either the same n_head ({H}, if it divides "
            f"{new_d_model}) or n_head = {new_d_model} / {K} (keeping head width {K}); got "
            f"n_head={new_n_head}"
        )
    if noise_std < 0 or (noise_std > 0 and key is None):
        raise ValueError(f"noise_std must be >= 0 and needs a key when > 0 (widen(..., "
                         f"noise_std=0.01, key=jax.random.key(0))); got {noise_std}")
    noise_keys = iter(jax.random.split(key, 3 * config.n_layer + 1) if noise_std else [])

    def noisy(w: jax.Array, where: jax.Array) -> jax.Array:
        """w plus N(0, noise_std) where `where` is True (nothing without noise)."""
        if not noise_std:
            return w
        return w + jnp.where(where, noise_std * jax.random.normal(next(noise_keys), w.shape), 0)

    new_dims = jnp.arange(new_d_model) >= D  # (D',): True for the new stream dimensions
    # (D',): True for the new slots of the head-structured axis (each old head keeps its
    # first K slots, or the new heads)
    new_slots = _new_slots(H, K, new_n_head, new_head)  # (D',)
    center = _center if preserve else (lambda w: w)
    gain = math.sqrt(D / new_d_model) if preserve else 1.0  # LN gain correction
    q_scale = math.sqrt(new_head / K)  # keeps q.k / sqrt(K') equal to the old q.k / sqrt(K)

    def stream(w: jax.Array) -> jax.Array:  # a writer: [..., D] -> [..., D'] (centred, padded)
        return _pad(center(w), -1, new_d_model)

    def norm(ln: dict) -> dict:  # a LayerNorm: gains rescaled, new dims have gain 1, bias 0
        scale = jnp.concatenate([gain * ln["scale"], jnp.ones(new_d_model - D)])  # (D',)
        return {"scale": scale, "bias": _pad(ln["bias"], 0, new_d_model)}  # (D',)

    def heads(w: jax.Array, axis: int) -> jax.Array:  # a head-structured axis: D -> D'
        return _pad_heads(w, axis, H, new_head, new_n_head)

    def tied_embed(w: jax.Array) -> jax.Array:  # [V, D] -> [V, D'], see the docstring
        if not preserve:
            return _pad(w, -1, new_d_model)
        fill = jnp.broadcast_to(w.mean(axis=-1, keepdims=True), (w.shape[0], new_d_model - D))
        return jnp.concatenate([w, fill], axis=-1)  # (V, D'): new entries = the row's mean

    tied = config.tie_embeddings
    new: Params = {
        "embed": tied_embed(params["embed"]) if tied else stream(params["embed"]),  # (V, D')
        "pos_embed": stream(params["pos_embed"]),  # (max_len, D')
        "blocks": [],
        "ln_final": norm(params["ln_final"]),
    }
    if not tied:
        # (V, D'): a reader, of normed new dimensions that are 0
        new["unembed"] = noisy(_pad(params["unembed"], -1, new_d_model), new_dims[None])
    for block in params["blocks"]:
        attn, mlp_params = block["attn"], block["mlp"]
        w_q, w_k, w_v = jnp.split(attn["w_qkv"], 3, axis=1)  # 3 x (D, D)
        b_q, b_k, b_v = jnp.split(attn["b_qkv"], 3)  # 3 x (D,)
        w_qkv = jnp.concatenate(
            [heads(q_scale * w_q, 1), heads(w_k, 1), heads(w_v, 1)], axis=1
        )  # (D, 3D')
        b_qkv = jnp.concatenate([heads(q_scale * b_q, 0), heads(b_k, 0), heads(b_v, 0)])  # (3D',)
        # free to be random: rows reading the new dimensions (0 after the norm), and the
        # new query and value slots (their keys and rows of w_out are 0)
        free = new_dims[:, None] | jnp.concatenate([new_slots, jnp.zeros_like(new_slots),
                                                    new_slots])[None]  # (D', 3D')  # fmt: skip
        new["blocks"].append(
            {
                "ln1": norm(block["ln1"]),
                "attn": {
                    "w_qkv": noisy(_pad(w_qkv, 0, new_d_model), free),  # (D', 3D')
                    "b_qkv": b_qkv,
                    "w_out": stream(heads(attn["w_out"], 0)),  # (D', D')
                    "b_out": stream(attn["b_out"]),  # (D',)
                },
                "ln2": norm(block["ln2"]),
                "mlp": {
                    "w_in": noisy(_pad(mlp_params["w_in"], 0, new_d_model),
                                  new_dims[:, None]),  # (D', M)  # fmt: skip
                    "b_in": mlp_params["b_in"],  # (M,)
                    "w_out": stream(mlp_params["w_out"]),  # (M, D')
                    "b_out": stream(mlp_params["b_out"]),  # (D',)
                },
            }
        )
    return new, dataclasses.replace(config, d_model=new_d_model, n_head=new_n_head)
