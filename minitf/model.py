"""The GPT-2 architecture as pure functions over a nested-dict parameter pytree.

Read it top-down: `Config` says how big the model is, `init_params` makes the matrices,
and `forward` runs tokens through embeddings, a stack of pre-norm blocks (causal
multi-head self-attention, then a GELU MLP, each adding its output to the residual
stream), a final layer norm and the unembedding. Each piece is written for a matrix of
positions, one row per position, where two-dimensional shapes are easy to follow. Only
attention mixes positions, so `forward` stacks the positions of every sequence into one
[B*T, D] matrix and runs attention per sequence with `jax.vmap`.
Left out on purpose: dropout (toy tasks don't need it) and any module framework.

Shape letters used in the comments:
    B batch, T sequence (query positions), S key positions, D d_model,
    H heads, K head dimension (D // H), M d_mlp, V vocab size, BT = B * T positions.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

Params = dict  # nested dict (and lists) of jnp arrays: a pytree

LN_EPS = 1e-5  # GPT-2's layer-norm epsilon


@dataclasses.dataclass(frozen=True)
class Config:
    """How big the model is. Frozen, so it can be a static argument to `jax.jit`."""

    vocab_size: int  # number of token ids, V
    n_layer: int = 2  # transformer blocks
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
    Lesson 5 explains it.
    """
    D, M, V = config.d_model, config.d_mlp, config.vocab_size
    std = 0.02
    resid_std = std / math.sqrt(2 * config.n_layer)
    # every weight matrix is drawn from a key of its own, in this order
    shapes = [(V, D), (config.max_len, D)]
    shapes += [(D, 3 * D), (D, D), (D, M), (M, D)] * config.n_layer
    scales = [std, std] + [std, resid_std, std, resid_std] * config.n_layer
    if not config.tie_embeddings:
        shapes.append((V, D))  # the unembedding
        scales.append(std)
    # the last key is the unembedding's even when tied, so tying changes no other matrix
    keys = jax.random.split(key, 3 + 4 * config.n_layer)
    draws = iter(_normal_draws(keys[: len(shapes)], shapes, scales))

    def normal(shape: tuple[int, ...]) -> jax.Array:
        draw = next(draws)
        assert draw.shape == shape, "init_params draws its matrices in the order of `shapes`"
        return draw

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
                    "w_out": normal((D, D)),  # (D, D): heads back to the stream (resid_std)
                    "b_out": jnp.zeros(D),
                },
                "ln2": norm(),
                "mlp": {
                    "w_in": normal((D, M)),  # (D, M)
                    "b_in": jnp.zeros(M),
                    "w_out": normal((M, D)),  # (M, D), resid_std
                    "b_out": jnp.zeros(D),
                },
            }
        )
    if not config.tie_embeddings:
        # (V, D): the lm_head, logits = resid @ unembed.T, no bias
        params["unembed"] = normal((V, D))
    return params


def _normal_draws(
    keys: jax.Array, shapes: list[tuple[int, ...]], scales: list[float]
) -> list[jax.Array]:
    """`scales[i] * jax.random.normal(keys[i], shapes[i])` for every i, mostly in one draw.

    Drawing matrix by matrix compiles one random-number kernel per matrix (about 0.2 s
    each on a CPU, most of a small model's start-up). A draw of n numbers from a key
    begins with the draw of any fewer numbers from the same key, so one vmapped draw of
    the longest length per key, cut to each shape, gives the very same numbers. A draw
    over 4x the median size (a large vocabulary's embedding) is made alone, so the
    padding never costs more than a few block matrices' worth of numbers per key.
    """
    sizes = [math.prod(shape) for shape in shapes]
    limit = 4 * sorted(sizes)[len(sizes) // 2]
    batched = [i for i, size in enumerate(sizes) if size <= limit]
    longest = max(sizes[i] for i in batched)

    def draw(key: jax.Array, scale: jax.Array) -> jax.Array:
        return scale * jax.random.normal(key, (longest,))  # (longest,)

    batch_keys, batch_scales = keys[jnp.array(batched)], jnp.array([scales[i] for i in batched])
    rows = jax.vmap(draw)(batch_keys, batch_scales)  # (len(batched), longest)
    cut = {i: row[: sizes[i]] for i, row in zip(batched, rows, strict=True)}  # (size,) each
    return [
        cut[i].reshape(shape) if i in cut else scales[i] * jax.random.normal(keys[i], shape)
        for i, shape in enumerate(shapes)
    ]


def unembed_matrix(params: Params, config: Config) -> jax.Array:
    """The lm_head's matrix W_U, shape (V, D): the embedding itself when tied."""
    return params["embed"] if config.tie_embeddings else params["unembed"]


def count_params(params: Params) -> int:
    """Total number of scalars in a parameter pytree.
    Lesson 5 explains it.
    """
    return sum(x.size for x in jax.tree_util.tree_leaves(params))


# --- the pieces of a block ---------------------------------------------------------------


def layer_norm(x: jax.Array, norm: dict) -> jax.Array:
    """Normalize each vector to mean 0, variance 1, then scale and shift. [..., D] -> [..., D]
    Lesson 5 explains it.
    """
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = x.var(axis=-1, keepdims=True)  # (..., 1)
    lead = (1,) * (x.ndim - 1)  # broadcast scale and bias over every leading axis, explicitly
    scale, bias = norm["scale"].reshape(*lead, -1), norm["bias"].reshape(*lead, -1)  # (..., D)
    return (x - mean) / jnp.sqrt(var + LN_EPS) * scale + bias  # (..., D)


def split_heads(x: jax.Array, n_head: int) -> jax.Array:
    """[T, D] -> [T, H, K]: each head reads its own slice of the vector."""
    T, D = x.shape
    return x.reshape(T, n_head, D // n_head)  # (T, H, K)


def qkv(x: jax.Array, attn: dict, n_head: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Queries, keys and values for every position. [T, D] -> 3 x [T, H, K]
    Lesson 4 explains it.
    """
    # one matmul computes all three; [None] shares the bias across positions
    q, k, v = jnp.split(x @ attn["w_qkv"] + attn["b_qkv"][None], 3, axis=-1)  # 3 x (T, D)
    return split_heads(q, n_head), split_heads(k, n_head), split_heads(v, n_head)


def attend(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Each query mixes the values of the keys it may see, weighted by softmax(q.k).

    [T, H, K] queries, [S, H, K] keys and values, [T, S] bool mask (True = may attend)
    -> z [T, H, K] (the mixed values) and attn_pattern [H, T, S] (rows sum to 1).
    Lesson 4 explains it.
    """
    # scale by sqrt(K) so the dot products keep unit variance and the softmax doesn't saturate
    scores = jnp.einsum("thk,shk->hts", q, k) / math.sqrt(q.shape[-1])  # (H, T, S)
    # masked scores get the most negative float rather than -inf: exp() makes them exactly 0,
    # and a row with nothing visible (never the case for causal rows) can't produce NaN
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)  # (H, T, S)
    attn_pattern = jax.nn.softmax(scores, axis=-1)  # (H, T, S)
    z = jnp.einsum("hts,shk->thk", attn_pattern, v)  # (T, H, K)
    return z, attn_pattern


def causal_mask(T: int) -> jax.Array:
    """Position t may attend to positions 0..t: a lower-triangular [T, T] bool matrix.
    Lesson 4 explains it.
    """
    return jnp.tril(jnp.ones((T, T), dtype=bool))  # (T, T)


def attn_output(z: jax.Array, attn: dict) -> jax.Array:
    """Concatenate the heads and project back into the residual stream. [T, H, K] -> [T, D]
    Lesson 4 explains it.
    """
    T, H, K = z.shape
    return z.reshape(T, H * K) @ attn["w_out"] + attn["b_out"][None]  # (T, D)


def mlp(x: jax.Array, mlp_params: dict) -> jax.Array:
    """Two-layer perceptron applied to each position on its own. [T, D] -> [T, D]
    Lesson 5 explains it.
    """
    pre = x @ mlp_params["w_in"] + mlp_params["b_in"][None]  # (T, M)
    hidden = jax.nn.gelu(pre, approximate=True)  # (T, M)
    return hidden @ mlp_params["w_out"] + mlp_params["b_out"][None]  # (T, D)


def logits_from_resid(params: Params, config: Config, resid: jax.Array) -> jax.Array:
    """Final layer norm, then the unembedding (lm_head, no bias). [..., D] -> [..., V]

    The model's own output uses this on the last residual; the logit lens uses it on
    every layer's residual.
    Lesson 8 explains it.
    """
    normed = layer_norm(resid, params["ln_final"])  # (..., D)
    return normed @ unembed_matrix(params, config).T  # (..., V)


# --- the whole model ---------------------------------------------------------------------


def _forward_rows(params: Params, tokens: jax.Array, config: Config) -> tuple[jax.Array, dict]:
    """Every sequence at once. [B, T] int -> logits [B, T, V] and an activation dict.

    Embeddings, layer norms, the MLP and every projection treat each position on its own,
    so the residual stream is one [B*T, D] matrix of rows and each weight matrix meets
    all positions in a single 2-D product (on a CPU about 20% faster to train than a
    batch of per-sequence products). Attention, the one step that mixes positions, sees
    the rows regrouped by sequence.
    """
    B, T = tokens.shape
    rows = lambda x: x.reshape(B * T, *x.shape[2:])  # noqa: E731  (B, T, ...) -> (B*T, ...)
    seqs = lambda x: x.reshape(B, T, *x.shape[1:])  # noqa: E731  (B*T, ...) -> (B, T, ...)
    attend_each = jax.vmap(attend, in_axes=(0, 0, 0, None))  # one sequence at a time
    acts = {}
    # jnp.take (not embed[tokens]) also works when params are plain numpy arrays
    tok_embed = jnp.take(params["embed"], tokens, axis=0)  # (B, T, D)
    resid = rows(tok_embed + params["pos_embed"][None, :T])  # (BT, D): [None] shares positions
    mask = causal_mask(T)  # (T, T)
    for layer, block in enumerate(params["blocks"]):
        name = f"blocks.{layer}"
        acts[f"{name}.resid_pre"] = seqs(resid)  # (B, T, D)
        q, k, v = qkv(layer_norm(resid, block["ln1"]), block["attn"], config.n_head)  # (BT, H, K)
        # (B, T, H, K) and the pattern (B, H, T, T)
        z, acts[f"{name}.attn_pattern"] = attend_each(seqs(q), seqs(k), seqs(v), mask)
        acts[f"{name}.attn_z"] = z  # (B, T, H, K): what each head writes, before w_out
        attn_out = attn_output(rows(z), block["attn"])  # (BT, D)
        acts[f"{name}.attn_out"] = seqs(attn_out)  # (B, T, D)
        resid = resid + attn_out  # (BT, D)
        acts[f"{name}.resid_mid"] = seqs(resid)  # (B, T, D)
        mlp_out = mlp(layer_norm(resid, block["ln2"]), block["mlp"])  # (BT, D)
        acts[f"{name}.mlp_out"] = seqs(mlp_out)  # (B, T, D)
        resid = resid + mlp_out  # (BT, D)
        acts[f"{name}.resid_post"] = seqs(resid)  # (B, T, D)
    normed = layer_norm(resid, params["ln_final"])  # (BT, D)
    acts["ln_final.out"] = seqs(normed)  # (B, T, D)
    logits = normed @ unembed_matrix(params, config).T  # (BT, V)
    return seqs(logits), acts  # (B, T, V)


def forward(
    params: Params, tokens: jax.Array, config: Config, *, cache: bool = False
) -> jax.Array | tuple[jax.Array, dict]:
    """Logits for every position of every sequence. [B, T] int -> [B, T, V] float.

    With `cache=True` also returns the activations, keyed `blocks.{l}.resid_pre`,
    `blocks.{l}.attn_pattern` [B, H, T, T], `blocks.{l}.resid_mid`, `blocks.{l}.resid_post`,
    `blocks.{l}.attn_z` [B, T, H, K], `blocks.{l}.attn_out`, `blocks.{l}.mlp_out` and
    `ln_final.out` (each [B, T, D] unless noted), so nothing is computed twice.
    Lesson 5 explains it.
    """
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
    logits, acts = _forward_rows(params, tokens, config)  # (B, T, V)
    return (logits, acts) if cache else logits
