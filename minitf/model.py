"""The GPT-2 architecture as pure functions over a nested-dict parameter pytree.

Read it top-down: `Config` says how big the model is, `init_params` makes the matrices,
`block` is one transformer block for one sequence (causal multi-head self-attention, then
a GELU MLP, each reading a layer-normed copy of the residual stream and adding its output
back), and `forward` runs tokens through the embeddings, the stack of blocks, a final
layer norm and the unembedding. `forward(..., cache=True)` also returns every named
activation, and `hooks` may replace one on the way (the lesson "Interventions").

Every piece is written for one sequence, a [T, D] matrix with one row per position, and
treats any leading axes as more sequences. So `forward` hands a whole batch [B, T, D] to
the same `block` instead of mapping it over the sequences with `jax.vmap`: `linear` then
multiplies all B*T rows by a weight matrix in one 2-D product, which trains about 25%
faster on a CPU than the per-sequence products `jax.vmap` makes (benchmarks/train.py).
Left out on purpose: dropout (toy tasks don't need it) and any module framework.

Shape letters, used with these meanings in every module's comments:
    B batch, T sequence (query positions), S key positions (or cache slots),
    D d_model, H heads, K head dimension (D // H), M d_mlp, V vocab size, L n_layer,
    N sequences or problems in a data set, P prompt length, A answer length,
    G generated tokens; `...` any leading axes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Params = dict  # nested dict (and lists) of jnp arrays: a pytree
Hook = Callable[[jax.Array], jax.Array]  # an activation in, the (maybe replaced) activation out

LN_EPS = 1e-5  # GPT-2's layer-norm epsilon
INIT_STD = 0.02  # GPT-2's standard deviation for every initial weight matrix

# the activations `block` names, in the order it computes them ("blocks.{l}." in front)
BLOCK_ACTIVATIONS = ("resid_pre", "attn_pattern", "attn_z", "attn_out", "resid_mid", "mlp_out",
                     "resid_post")  # fmt: skip
RECORDED_ONLY = ("attn_pattern",)  # cached, but not replaceable by a hook (replace attn_z)


@dataclasses.dataclass(frozen=True)
class Config:
    """How big the model is. Frozen, so it can be a static argument to `jax.jit`."""

    vocab_size: int  # number of token ids, V
    n_layer: int = 2  # transformer blocks, L
    n_head: int = 4  # attention heads per block, H
    d_model: int = 128  # width of the residual stream, D
    d_mlp: int = 512  # hidden width of each MLP, M (GPT-2 uses 4 * d_model)
    max_len: int = 64  # longest sequence the position embedding covers
    tie_embeddings: bool = False  # True: the unembedding reuses the embedding matrix
    norm: str = "layernorm"  # the only norm implemented: GPT-2's LayerNorm
    activation: str = "gelu"  # GELU, tanh approximation, as GPT-2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "d_mlp", "max_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Config.{name} must be a positive int; got {value!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"Config.tie_embeddings must be True or False; got "
                             f"{self.tie_embeddings!r}")  # fmt: skip
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head}) so "
                f"every head gets the same width; try n_head={_largest_divisor(self)}"
            )
        if self.norm != "layernorm":
            raise ValueError(f"Config.norm must be 'layernorm'; got {self.norm!r}")
        if self.activation != "gelu":
            raise ValueError(f"Config.activation must be 'gelu'; got {self.activation!r}")

    @property
    def d_head(self) -> int:
        """Width of one attention head, K = D // H."""
        return self.d_model // self.n_head

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> Config:
        if not isinstance(fields, dict):
            raise ValueError(f"a model config must be a dict of fields; got {fields!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"unknown Config fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**fields)


def _largest_divisor(config: Config) -> int:
    return max(h for h in range(1, config.n_head + 1) if config.d_model % h == 0)


# --- parameters ------------------------------------------------------------------------


def init_params(config: Config, key: jax.Array) -> Params:
    """Random parameters, GPT-2 style: weights ~ N(0, 0.02), biases 0, norms scale 1.

    The two projections that write into the residual stream (attention out, MLP out)
    are scaled by 1/sqrt(2 * n_layer) so the stream's variance doesn't grow with depth.
    The lesson "The block and the residual stream" explains it.
    """
    D, M, V = config.d_model, config.d_mlp, config.vocab_size
    resid_std = INIT_STD / math.sqrt(2 * config.n_layer)
    # Each weight matrix is named once below by `normal`, which notes its shape and std and
    # leaves its index in the tree; all of them are then drawn at once and put in place.
    wanted: list[tuple[tuple[int, ...], float]] = []

    def normal(shape: tuple[int, ...], std: float = INIT_STD) -> int:
        wanted.append((shape, std))
        return len(wanted) - 1  # a placeholder until the draw below

    def norm() -> dict:
        return {"scale": jnp.ones(D), "bias": jnp.zeros(D)}

    params: Params = {
        "embed": normal((V, D)),  # (V, D): one row per token
        "pos_embed": normal((config.max_len, D)),  # (max_len, D): one row per position
        "blocks": [],
        "ln_final": norm(),
    }
    for _ in range(config.n_layer):
        params["blocks"].append(
            {
                "ln1": norm(),
                "attn": {
                    "w_qkv": normal((D, 3 * D)),  # (D, 3D): queries, keys, values side by side
                    "b_qkv": jnp.zeros(3 * D),
                    "w_out": normal((D, D), resid_std),  # (D, D): heads back to the stream
                    "b_out": jnp.zeros(D),
                },
                "ln2": norm(),
                "mlp": {
                    "w_in": normal((D, M)),  # (D, M)
                    "b_in": jnp.zeros(M),
                    "w_out": normal((M, D), resid_std),  # (M, D)
                    "b_out": jnp.zeros(D),
                },
            }
        )
    if not config.tie_embeddings:
        # (V, D): the lm_head, logits = resid @ unembed.T, no bias
        params["unembed"] = normal((V, D))
    # one key per matrix, in the order named; the last key is the unembedding's even when
    # tied, so tying changes no other matrix
    keys = jax.random.split(key, 3 + 4 * config.n_layer)
    draws = _normal_draws(keys[: len(wanted)], wanted)
    return jax.tree.map(lambda leaf: draws[leaf] if isinstance(leaf, int) else leaf, params)


def _normal_draws(keys: jax.Array, wanted: list[tuple[tuple[int, ...], float]]) -> list:
    """`std_i * jax.random.normal(keys[i], shape_i)` for every (shape_i, std_i), mostly at once.

    Drawing matrix by matrix compiles one random-number kernel per matrix, most of a small
    model's start-up on a CPU (jitted init of benchmarks/train.py's config A: 0.9 s, one
    draw: 0.45 s). A draw of n numbers from a key begins with the draw of any fewer
    numbers from the same key, so one vmapped draw of the longest length per key, cut to
    each shape, gives the very same numbers. A draw over 4x the median size (a large
    vocabulary's embedding) is made alone, so the padding stays a few matrices' worth.
    """
    sizes = [math.prod(shape) for shape, _ in wanted]
    limit = 4 * sorted(sizes)[len(sizes) // 2]
    batched = [i for i, size in enumerate(sizes) if size <= limit]
    longest = max(sizes[i] for i in batched)

    def draw(key: jax.Array, std: jax.Array) -> jax.Array:
        return std * jax.random.normal(key, (longest,))  # (longest,)

    stds = jnp.array([wanted[i][1] for i in batched])  # (n_batched,)
    rows = jax.vmap(draw)(keys[jnp.array(batched)], stds)  # (n_batched, longest)
    cut = {i: row[: sizes[i]] for i, row in zip(batched, rows, strict=True)}  # (size,) each
    return [
        cut[i].reshape(shape) if i in cut else std * jax.random.normal(keys[i], shape)
        for i, (shape, std) in enumerate(wanted)
    ]


def unembed_matrix(params: Params, config: Config) -> jax.Array:
    """The lm_head's matrix W_U, shape (V, D): the embedding itself when tied."""
    return params["embed"] if config.tie_embeddings else params["unembed"]


def count_params(params: Params) -> int:
    """Total number of scalars in a parameter pytree. The lesson "The block and the
    residual stream" counts them by formula."""
    return sum(x.size for x in jax.tree_util.tree_leaves(params))


# --- the pieces of a block ---------------------------------------------------------------


def linear(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """x @ w + b on the last axis. [..., D_in] -> [..., D_out]

    Leading axes (positions, sequences) are first laid end to end as one axis of rows,
    so the weight matrix meets every vector in a single 2-D matrix product.
    """
    rows = x.reshape(-1, x.shape[-1]) @ w  # (n_rows, D_out)
    if b is not None:
        rows = rows + b[None]  # [None] shares the bias across rows
    return rows.reshape(*x.shape[:-1], w.shape[-1])  # (..., D_out)


def layer_norm(x: jax.Array, norm: dict) -> jax.Array:
    """Normalize each vector to mean 0, variance 1, then scale and shift. [..., D] -> [..., D]

    It keeps the numbers each block reads at one scale, however large the residual stream
    has grown. The lesson "The block and the residual stream" explains it.
    """
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = x.var(axis=-1, keepdims=True)  # (..., 1)
    lead = (1,) * (x.ndim - 1)  # broadcast scale and bias over every leading axis, explicitly
    scale, bias = norm["scale"].reshape(*lead, -1), norm["bias"].reshape(*lead, -1)  # (..., D)
    return (x - mean) / jnp.sqrt(var + LN_EPS) * scale + bias  # (..., D)


def split_heads(x: jax.Array, n_head: int) -> jax.Array:
    """[..., T, D] -> [..., T, H, K]: each head reads its own slice of the vector."""
    return x.reshape(*x.shape[:-1], n_head, x.shape[-1] // n_head)  # (..., T, H, K)


def qkv(x: jax.Array, attn: dict, n_head: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Queries, keys and values for every position. [..., T, D] -> 3 x [..., T, H, K]

    The lesson "Self-attention" explains them.
    """
    # one matrix product computes all three
    q, k, v = jnp.split(linear(x, attn["w_qkv"], attn["b_qkv"]), 3, axis=-1)  # 3 x (..., T, D)
    return split_heads(q, n_head), split_heads(k, n_head), split_heads(v, n_head)


def attend(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Each query mixes the values of the keys it may see, weighted by softmax(q.k).

    [..., T, H, K] queries, [..., S, H, K] keys and values, [T, S] bool mask (True = may
    attend) -> z [..., T, H, K] (the mixed values) and attn_pattern [..., H, T, S] (rows
    sum to 1). The lesson "Self-attention" explains it.
    """
    # scale by sqrt(K) so the dot products keep unit variance and the softmax doesn't saturate
    scores = jnp.einsum("...thk,...shk->...hts", q, k) / math.sqrt(q.shape[-1])  # (..., H, T, S)
    # masked scores get the most negative float rather than -inf: exp() makes them exactly 0,
    # and a row with nothing visible (never the case for causal rows) can't produce NaN
    visible = jnp.broadcast_to(mask, scores.shape)  # (..., H, T, S): one mask for every head
    scores = jnp.where(visible, scores, jnp.finfo(scores.dtype).min)  # (..., H, T, S)
    attn_pattern = jax.nn.softmax(scores, axis=-1)  # (..., H, T, S)
    z = jnp.einsum("...hts,...shk->...thk", attn_pattern, v)  # (..., T, H, K)
    return z, attn_pattern


def causal_mask(T: int) -> jax.Array:
    """Position t may attend to positions 0..t: a lower-triangular [T, T] bool matrix.

    The lesson "Self-attention" explains it.
    """
    return jnp.tril(jnp.ones((T, T), dtype=bool))  # (T, T)


def attn_output(z: jax.Array, attn: dict) -> jax.Array:
    """Concatenate the heads and project back into the residual stream.
    [..., T, H, K] -> [..., T, D]. The lesson "Self-attention" explains it."""
    heads = z.reshape(*z.shape[:-2], z.shape[-2] * z.shape[-1])  # (..., T, H*K): side by side
    return linear(heads, attn["w_out"], attn["b_out"])  # (..., T, D)


def mlp(x: jax.Array, mlp_params: dict) -> jax.Array:
    """Two-layer perceptron applied to each position on its own. [..., T, D] -> [..., T, D]

    Attention moves information between positions; the MLP then computes with what each
    position holds: widen to M, bend with GELU (a smooth ReLU), project back. The lesson
    "The block and the residual stream" explains it.
    """
    pre = linear(x, mlp_params["w_in"], mlp_params["b_in"])  # (..., T, M)
    hidden = jax.nn.gelu(pre, approximate=True)  # (..., T, M)
    return linear(hidden, mlp_params["w_out"], mlp_params["b_out"])  # (..., T, D)


def logits_from_resid(params: Params, config: Config, resid: jax.Array) -> jax.Array:
    """Final layer norm, then the unembedding (lm_head, no bias). [..., D] -> [..., V]

    The model's own output uses this on the last residual; the logit lens uses it on
    every layer's residual. The lesson "The logit lens" explains it.
    """
    normed = layer_norm(resid, params["ln_final"])  # (..., D)
    return linear(normed, unembed_matrix(params, config).T)  # (..., V)


# --- one block, then the whole model ------------------------------------------------------


def block(
    resid_pre: jax.Array,
    block_params: dict,
    n_head: int,
    *,
    cache: bool = False,
    hooks: dict[str, Hook] | None = None,
) -> jax.Array | tuple[jax.Array, dict]:
    """One pre-norm transformer block. [T, D] -> [T, D] (or a batch [B, T, D] -> [B, T, D])

        resid_mid  = resid_pre + attention(layer_norm(resid_pre, ln1))
        resid_post = resid_mid + mlp(layer_norm(resid_mid, ln2))

    Nothing is overwritten: each part reads the residual stream and adds a small update.
    With `cache=True` also returns its activations by name (BLOCK_ACTIVATIONS; the pattern
    is [H, T, T], z [T, H, K], the others [T, D]); `hooks` {name: fn} replaces an
    activation by fn(activation) as soon as it is computed, and what follows uses the
    replacement. The lesson "The block and the residual stream" has you write it.
    """
    hooks = hooks or {}
    acts: dict[str, jax.Array] = {}

    def named(name: str, x: jax.Array) -> jax.Array:
        """Pass an activation through its hook, if any, and keep it for the cache."""
        acts[name] = hooks[name](x) if name in hooks else x
        return acts[name]

    T = resid_pre.shape[-2]
    resid_pre = named("resid_pre", resid_pre)  # (..., T, D)
    q, k, v = qkv(layer_norm(resid_pre, block_params["ln1"]), block_params["attn"], n_head)
    z, acts["attn_pattern"] = attend(q, k, v, causal_mask(T))  # (..., T, H, K), (..., H, T, T)
    z = named("attn_z", z)  # (..., T, H, K): what each head writes, before w_out
    attn_out = named("attn_out", attn_output(z, block_params["attn"]))  # (..., T, D)
    resid_mid = named("resid_mid", resid_pre + attn_out)  # (..., T, D)
    normed = layer_norm(resid_mid, block_params["ln2"])  # (..., T, D)
    mlp_out = named("mlp_out", mlp(normed, block_params["mlp"]))  # (..., T, D)
    resid_post = named("resid_post", resid_mid + mlp_out)  # (..., T, D)
    return (resid_post, acts) if cache else resid_post


def forward(
    params: Params,
    tokens: jax.Array,
    config: Config,
    *,
    cache: bool = False,
    hooks: dict[str, Hook] | None = None,
) -> jax.Array | tuple[jax.Array, dict]:
    """Logits for every position of every sequence. [B, T] int -> [B, T, V] float.

    With `cache=True` also returns the activations, keyed `blocks.{l}.resid_pre`,
    `blocks.{l}.attn_pattern` [B, H, T, T], `blocks.{l}.attn_z` [B, T, H, K],
    `blocks.{l}.attn_out`, `blocks.{l}.resid_mid`, `blocks.{l}.mlp_out`,
    `blocks.{l}.resid_post` and `ln_final.out` (each [B, T, D] unless noted), so nothing
    is computed twice. `hooks` {name: fn} replaces the activation of that name by
    fn(activation) [B, ...] -> [B, ...] and runs the rest of the model on the replacement
    (`minitf.interventions` builds ablations and patching on it).
    The lesson "The block and the residual stream" explains it.
    """
    tokens = _check_tokens(tokens, config)  # (B, T)
    hooks = _check_hooks(hooks or {}, config)
    T = tokens.shape[1]
    acts: dict[str, jax.Array] = {}
    # jnp.take (not embed[tokens]) also works when params are plain numpy arrays
    tok_embed = jnp.take(params["embed"], tokens, axis=0)  # (B, T, D)
    resid = tok_embed + params["pos_embed"][None, :T]  # (B, T, D): [None] shares positions
    for layer, block_params in enumerate(params["blocks"]):
        prefix = f"blocks.{layer}."
        mine = {name.removeprefix(prefix): fn for name, fn in hooks.items()
                if name.startswith(prefix)}  # fmt: skip
        resid, block_acts = block(resid, block_params, config.n_head, cache=True, hooks=mine)
        acts.update({prefix + name: x for name, x in block_acts.items()})  # (B, T, ...) each
    normed = layer_norm(resid, params["ln_final"])  # (B, T, D)
    if "ln_final.out" in hooks:
        normed = hooks["ln_final.out"](normed)  # (B, T, D)
    acts["ln_final.out"] = normed
    logits = linear(normed, unembed_matrix(params, config).T)  # (B, T, V)
    return (logits, acts) if cache else logits


def activation_names(config: Config) -> list[str]:
    """Every name `forward(..., cache=True)` returns, in the order they are computed."""
    names = [f"blocks.{l}.{name}" for l in range(config.n_layer) for name in BLOCK_ACTIVATIONS]
    return names + ["ln_final.out"]


def _check_tokens(tokens, config: Config) -> jax.Array:
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(
            f"tokens must have shape (batch, seq); got shape {tokens.shape}. "
            "For one sequence, pass tokens[None]."
        )
    if tokens.shape[1] > config.max_len:
        raise ValueError(
            f"sequence length {tokens.shape[1]} exceeds config.max_len={config.max_len}; "
            "shorten the input or build the model with a larger max_len"
        )
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens must be integer ids; got dtype {tokens.dtype}")
    return tokens


def _check_hooks(hooks: dict[str, Hook], config: Config) -> dict[str, Hook]:
    replaceable = [n for n in activation_names(config) if n.split(".")[-1] not in RECORDED_ONLY]
    unknown = sorted(set(hooks) - set(replaceable))
    if unknown:
        raise ValueError(
            f"no activation named {unknown} can be replaced; hooks take names like "
            f"{replaceable[:3]} ... {replaceable[-1]!r} (attention patterns are recorded "
            "only: to change what a head writes, hook its blocks.{l}.attn_z)"
        )
    return hooks
