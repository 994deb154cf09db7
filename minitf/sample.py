"""Text generation: greedy, temperature, top-k and top-p (nucleus) sampling with a KV cache.

Generating a token means running the model on everything so far and picking from the
logits at the last position. Done naively (`use_cache=False`) every step re-runs the
whole sequence. But in a causal model the keys and values of earlier positions never
change, so the KV cache keeps them: one pass over the prompt (the *prefill*) fills the
cache, then each *decode* step runs only the newest token and attends to the cached
keys and values. The cache is a fixed-size buffer, one slot per position this call will
fill, so its shape never changes and each step compiles once, not once per token; the
whole loop runs inside one `jax.jit` call with `jax.lax.fori_loop`, with no trip back to
Python between tokens. The math is model.py's own pieces (`layer_norm`, `qkv`, `attend`,
`attn_output`, `mlp`, `logits_from_resid`), so the cached path can't drift from `forward`.

Left out on purpose: prompts of different lengths in one batch (they would need padding
and per-row positions), stop tokens, beam search, repetition penalties.

Shape letters as in `minitf.model`: P is the prompt's length, G the number of new
tokens, and S = P + G the cache's slots (the key positions).
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from minitf.model import (
    Config,
    Params,
    attend,
    attn_output,
    forward,
    layer_norm,
    logits_from_resid,
    mlp,
    qkv,
)

# --- choosing the next token ---------------------------------------------------------------


def filter_top_k(logits: jax.Array, k: int) -> jax.Array:
    """Keep the k largest logits of each row and set the rest to -inf. [..., V] -> [..., V]

    -inf rather than a large negative number so those tokens get probability exactly 0.
    Tokens tied with the k-th largest logit are kept too. The lesson "Sampling" has you write it.
    """
    kth_largest = jax.lax.top_k(logits, k)[0][..., -1:]  # (..., 1)
    return jnp.where(logits >= kth_largest, logits, -jnp.inf)  # (..., V)


def filter_top_p(logits: jax.Array, p: float) -> jax.Array:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probabilities
    add up to at least p, and set the rest to -inf. [..., V] -> [..., V]

    The token whose probability carries the running total past p is kept (without it
    the set wouldn't reach p), so the most likely token always survives. The lesson
    "Sampling" has you write it.
    """
    sorted_logits = jnp.flip(jnp.sort(logits, axis=-1), axis=-1)  # (..., V), most likely first
    probs = jax.nn.softmax(sorted_logits, axis=-1)  # (..., V)
    mass_before = jnp.cumsum(probs, axis=-1) - probs  # (..., V): total of the likelier tokens
    keep = mass_before < p  # (..., V): still short of p before this token, so it is needed
    n_keep = keep.sum(axis=-1, keepdims=True)  # (..., 1)
    smallest_kept = jnp.take_along_axis(sorted_logits, n_keep - 1, axis=-1)  # (..., 1)
    return jnp.where(logits >= smallest_kept, logits, -jnp.inf)  # (..., V)


def sample_next(
    logits: jax.Array,
    key: jax.Array,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> jax.Array:
    """Pick one token per row of logits. [B, V] -> [B] int

    Temperature 0 is greedy (argmax). Otherwise divide by the temperature (below 1
    sharpens the distribution, above 1 flattens it), filter, and sample; each row gets
    its own random draw. The lesson "Sampling" explains it.
    """
    if temperature == 0:
        return jnp.argmax(logits, axis=-1)  # (B,)
    logits = logits / temperature  # (B, V)
    if top_k is not None:
        logits = filter_top_k(logits, min(top_k, logits.shape[-1]))  # (B, V)
    if top_p is not None and top_p < 1:
        logits = filter_top_p(logits, top_p)  # (B, V)
    return jax.random.categorical(key, logits, axis=-1)  # (B,)


# --- the model, one new chunk of tokens at a time, with a KV cache -----------------------


def init_cache(config: Config, batch: int, length: int, dtype=jnp.float32) -> list[dict]:
    """An empty cache: per layer, keys and values of shape [B, S, H, K], all zeros.
    The lesson "Sampling" explains it."""
    shape = (batch, length, config.n_head, config.d_head)  # (B, S, H, K)
    return [
        {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for _ in range(config.n_layer)
    ]


def _forward_with_cache_one(
    params: Params, config: Config, tokens: jax.Array, cache: list[dict], pos: jax.Array | int
) -> tuple[jax.Array, list[dict]]:
    """One sequence: new tokens [T] at positions pos..pos+T-1 -> logits [T, V] and the cache
    with their keys and values written in (per layer [S, H, K])."""
    T = tokens.shape[0]
    S = cache[0]["k"].shape[0]
    positions = pos + jnp.arange(T)  # (T,)
    resid = jnp.take(params["embed"], tokens, axis=0) + params["pos_embed"][positions]  # (T, D)
    # the causal mask, shifted: the query at position p sees cache slots 0..p, which hold
    # the earlier tokens and itself, and never the empty slots after it
    mask = jnp.arange(S)[None, :] <= positions[:, None]  # (T, S)
    new_cache = []
    for block, layer_cache in zip(params["blocks"], cache, strict=True):
        q, k, v = qkv(layer_norm(resid, block["ln1"]), block["attn"], config.n_head)  # (T, H, K)
        keys = jax.lax.dynamic_update_slice(layer_cache["k"], k, (pos, 0, 0))  # (S, H, K)
        values = jax.lax.dynamic_update_slice(layer_cache["v"], v, (pos, 0, 0))  # (S, H, K)
        z, _ = attend(q, keys, values, mask)  # (T, H, K)
        resid = resid + attn_output(z, block["attn"])  # (T, D)
        resid = resid + mlp(layer_norm(resid, block["ln2"]), block["mlp"])  # (T, D)
        new_cache.append({"k": keys, "v": values})
    return logits_from_resid(params, config, resid), new_cache  # (T, V)


def forward_with_cache(
    params: Params, config: Config, tokens: jax.Array, cache: list[dict], pos: jax.Array | int
) -> tuple[jax.Array, list[dict]]:
    """Run new tokens [B, T] at positions pos..pos+T-1 against a cache filled up to pos.

    Returns logits [B, T, V] (equal to `forward`'s at those positions) and the updated
    cache. The prefill is this with the whole prompt and pos 0; a decode step is this
    with one token. The lesson "Sampling" walks through it.
    """
    one = functools.partial(_forward_with_cache_one, params, config)
    # every row of the batch is at the same position, so pos is shared (in_axes None)
    return jax.vmap(one, in_axes=(0, 0, None))(tokens, cache, pos)  # (B, T, V), (B, S, H, K)


# --- the generation loop, one jit-compiled call ----------------------------------------------

_STATIC = ("config", "max_new_tokens", "temperature", "top_k", "top_p", "use_cache")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _generate(
    params, prompt, key, *, config, max_new_tokens, temperature, top_k, top_p, use_cache
) -> jax.Array:
    """[B, P] prompt -> [B, P + G] tokens, with the KV cache or re-running `forward`."""
    B, P = prompt.shape
    S = P + max_new_tokens
    pick = functools.partial(sample_next, temperature=temperature, top_k=top_k, top_p=top_p)
    # room for every token from the start, so each step has the same shapes (one
    # compilation); thanks to the causal mask the empty slots never change the logits
    # of the positions before them
    tokens = jnp.zeros((B, S), prompt.dtype).at[:, :P].set(prompt)  # (B, S)

    if not use_cache:

        def step(i, tokens):
            logits = forward(params, tokens, config)  # (B, S, V): the whole sequence, again
            last = jax.lax.dynamic_index_in_dim(logits, P + i - 1, axis=1, keepdims=False)
            token = pick(last, jax.random.fold_in(key, i))  # (B,) from last (B, V)
            return tokens.at[:, P + i].set(token)  # (B, S)

        return jax.lax.fori_loop(0, max_new_tokens, step, tokens)  # (B, S)

    # prefill: the whole prompt in one pass fills cache slots 0..P-1
    cache = init_cache(config, B, S, params["embed"].dtype)  # (B, S, H, K) per layer
    logits, cache = forward_with_cache(params, config, prompt, cache, 0)  # (B, P, V)

    def decode(i, state):
        # sample position P + i from the last logits, then run just that token through the
        # model: its keys and values go into slot P + i, its logits predict the next one
        tokens, cache, last = state
        token = pick(last, jax.random.fold_in(key, i))  # (B,)
        tokens = tokens.at[:, P + i].set(token)  # (B, S)
        logits, cache = forward_with_cache(params, config, token[:, None], cache, P + i)
        return tokens, cache, logits[:, 0]  # (B, S), per layer (B, S, H, K), (B, V)

    # (the last step's forward pass is wasted, which keeps the loop simple: 1 step in G)
    state = (tokens, cache, logits[:, -1])
    return jax.lax.fori_loop(0, max_new_tokens, decode, state)[0]  # (B, S)


# --- the public entry point ----------------------------------------------------------------


def generate(
    params: Params,
    config: Config,
    prompt_ids,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    key: jax.Array | None = None,
    use_cache: bool = True,
) -> np.ndarray:
    """Continue a prompt by `max_new_tokens` tokens.

    `prompt_ids` is one prompt (a 1-D list or array of ids, shape [P]) or a batch of
    equal-length prompts [B, P]. Returns a numpy int32 array of the same rank with the
    new tokens appended: [P + G] or [B, P + G].

    `temperature=0` is greedy and needs no `key`; otherwise pass a `jax.random.key`:
    the same key gives the same tokens, and each row of a batch draws its own. `top_k`
    and `top_p` filter the distribution before sampling (see `filter_top_k`,
    `filter_top_p`). `use_cache=False` re-runs the whole sequence every step: the same
    tokens, much slower; it is here to compare against. Each distinct (prompt shape,
    max_new_tokens, temperature, top_k, top_p) compiles once, then runs fast.
    The lesson "Sampling" explains each rule and measures the cache's speedup.
    """
    prompt = _check_prompt(prompt_ids, config)  # (B, P)
    _check_settings(config, prompt.shape[1], max_new_tokens, temperature, top_k, top_p)
    if key is None:
        if temperature > 0:
            raise ValueError(
                "sampling with temperature > 0 needs a key: pass key=jax.random.key(seed), "
                "or temperature=0 for greedy decoding"
            )
        key = jax.random.key(0)  # greedy never reads it
    elif not isinstance(key, jax.Array):
        raise ValueError(f"key must be a jax.random.key(seed); got {key!r}")
    out = prompt
    if max_new_tokens > 0:
        out = np.asarray(
            _generate(
                params,
                jnp.asarray(prompt),
                key,
                config=config,
                max_new_tokens=int(max_new_tokens),
                temperature=float(temperature),
                top_k=None if top_k is None else int(top_k),
                top_p=None if top_p is None else float(top_p),
                use_cache=bool(use_cache),
            )
        )  # (B, S)
    return out[0] if np.ndim(prompt_ids) == 1 else out  # (S,) or (B, S)


def generate_long(
    params: Params,
    config: Config,
    prompt_ids,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    key: jax.Array | None = None,
) -> np.ndarray:
    """Continue one prompt [P] by any number of tokens, past the model's max_len positions.

    A model knows only `max_len` positions, so for longer text the window slides: once
    it is full, the last half of it becomes the next prompt and `generate` adds the
    other half (nanoGPT crops its context the same way, one token at a time). So every
    token is predicted from between max_len / 2 and max_len tokens before it, and after the
    first window each call has the same shapes (one compilation). A prompt longer than
    half the window is cut to its last half-window of tokens for conditioning; the
    returned array still starts with the whole prompt. -> [P + G] int32
    """
    prompt = _check_prompt(prompt_ids, config)[0]  # (P,)
    if np.ndim(prompt_ids) != 1:
        raise ValueError("generate_long continues one prompt: pass a 1-D list of ids")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int | np.integer) \
            or max_new_tokens < 0:  # fmt: skip
        raise ValueError(f"max_new_tokens must be an int >= 0; got {max_new_tokens!r}")
    if config.max_len < 2:
        raise ValueError("generate_long slides a window of max_len positions; it needs "
                         f"max_len >= 2, got {config.max_len}")  # fmt: skip
    keep = config.max_len // 2  # tokens carried over when the window slides
    tokens = list(prompt)
    context = prompt[-keep:] if len(prompt) > keep else prompt  # (P',)
    call = 0
    while len(tokens) < len(prompt) + max_new_tokens:
        n = config.max_len - len(context)  # fill the window (the last call's extra is cut)
        step_key = None if key is None else jax.random.fold_in(key, call)
        out = generate(params, config, context, n, temperature=temperature, top_k=top_k,
                       top_p=top_p, key=step_key)  # (max_len,)
        tokens += out[len(context):].tolist()
        context = np.asarray(tokens[-keep:], dtype=np.int32)  # (keep,)
        call += 1
    return np.asarray(tokens[: len(prompt) + max_new_tokens], dtype=np.int32)  # (P + G,)


def _check_prompt(prompt_ids, config: Config) -> np.ndarray:
    """Prompt ids as a [B, P] int32 numpy array, or a ValueError saying what to change."""
    try:
        prompt = np.asarray(prompt_ids)
    except ValueError as err:  # ragged nested lists
        raise ValueError(
            "the prompts in a batch must all have the same length; generate them one at a "
            "time, or crop them to a common length"
        ) from err
    if prompt.size == 0:
        raise ValueError(
            "the prompt is empty: the model needs at least one token to condition on; "
            "start from a start-of-text or newline token"
        )
    if prompt.ndim not in (1, 2):
        raise ValueError(
            f"prompt_ids must be 1-D (one prompt) or 2-D (batch, seq); got shape {prompt.shape}"
        )
    if not np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(f"prompt_ids must be integer token ids; got dtype {prompt.dtype}")
    if prompt.min() < 0 or prompt.max() >= config.vocab_size:
        raise ValueError(
            f"prompt ids must be in 0..{config.vocab_size - 1} (config.vocab_size); got "
            f"ids from {prompt.min()} to {prompt.max()}: encode with the model's tokenizer"
        )
    return prompt.reshape(-1, prompt.shape[-1]).astype(np.int32)  # (B, P)


def _check_settings(
    config: Config,
    prompt_len: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> None:
    """A ValueError, saying what to change, for any setting `generate` can't honour."""
    if prompt_len > config.max_len:
        raise ValueError(
            f"the prompt has {prompt_len} tokens but the model knows only config.max_len="
            f"{config.max_len} positions: keep the last {config.max_len} tokens or fewer"
        )
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int | np.integer):
        raise ValueError(f"max_new_tokens must be an int; got {max_new_tokens!r}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be 0 or more; got {max_new_tokens}")
    if prompt_len + max_new_tokens > config.max_len:
        crop = config.max_len - max_new_tokens  # prompt tokens that would still fit
        raise ValueError(
            f"prompt length {prompt_len} + max_new_tokens {max_new_tokens} = "
            f"{prompt_len + max_new_tokens} exceeds config.max_len={config.max_len} (the "
            f"positions the model knows): ask for at most {config.max_len - prompt_len} new "
            "tokens" + (f", or keep only the last {crop} prompt tokens" if crop > 0 else "")
        )
    if not (isinstance(temperature, numbers.Real) and math.isfinite(temperature)) or (
        temperature < 0
    ):
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 means greedy); got {temperature!r}"
        )
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1
    ):
        raise ValueError(f"top_k must be an int >= 1 (1 is greedy), or None; got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, numbers.Real) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), or None; got {top_p!r}")
