"""Interventions: replace one activation inside the model and measure what changes.

Attention patterns, the logit lens and direct logit attribution are observations: they
show where information can flow and what writes into a logit, not what the model needs.
An intervention asks the model: replace a part's activation, run the rest of the model
on the replacement (`forward(..., hooks=...)`), and see how much of the answer is left.

- Ablation removes a part: a head's output (`blocks.{l}.attn_z[..., h, :]`, what the head
  writes before `w_out`) or an MLP's output (`blocks.{l}.mlp_out`) becomes zeros (*zero
  ablation*) or its mean over a reference batch, position by position (*mean ablation*:
  it removes what the part says about this input and keeps what it says about every
  input, so the rest of the model still gets activations of a familiar size).
- Activation patching runs a corrupted input (say one operand digit changed) but puts
  back the clean run's activation at one layer and position. If the clean answer comes
  back, the information the corruption changed is held there, at that layer.

Every intervention is one `Replacement`: activation `name` becomes `value` where `where`
is True. `run` compiles one forward pass per activation name, so a sweep over heads,
layers or positions compiles a handful of times, not once per point.
The lesson "Interventions: which parts are necessary" uses all of it.

Left out: path patching, gradient approximations of patching (attribution patching), and
replacing attention patterns themselves (replace `attn_z`, what the pattern mixes, instead).

Shape letters as in `minitf.model`: N problems, T sequence, D d_model, H heads, K head
dimension, V vocab, A answer length.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from minitf.model import Config, Hook, Params, activation_names, forward


@dataclasses.dataclass(frozen=True)
class Replacement:
    """Replace activation `name` by `value` wherever `where` is True.

    `value` and `where` broadcast against the activation from the right, numpy-style:
    a scalar 0 for everything, a (T, H, K) mean for every problem, a (T, 1) position mask.
    """

    name: str  # e.g. "blocks.0.attn_z", a name from `model.activation_names`
    value: jax.Array  # what goes in
    where: jax.Array  # bool: True where the activation is replaced

    def hook(self) -> Hook:
        """The replacement as a `forward` hook."""
        return functools.partial(_replace, value=self.value, where=self.where)


def _replace(x: jax.Array, *, value: jax.Array, where: jax.Array) -> jax.Array:
    """x with `value` wherever `where` is True. [...] -> [...]"""
    value = jnp.broadcast_to(jnp.asarray(value, x.dtype), x.shape)  # (...)
    return jnp.where(jnp.broadcast_to(where, x.shape), value, x)  # (...)


# --- what to replace ------------------------------------------------------------------


def _check_layer(config: Config, layer: int) -> None:
    if not 0 <= layer < config.n_layer:
        raise ValueError(f"layer {layer} does not exist; the model has layers "
                         f"0..{config.n_layer - 1}")


def head_ablation(config: Config, layer: int, head: int, mean: dict | None = None) -> Replacement:
    """Head `head` of block `layer` writes zeros, or with `mean` (from `mean_activations`)
    its mean output at each position."""
    _check_layer(config, layer)
    if not 0 <= head < config.n_head:
        raise ValueError(f"head {head} does not exist; block {layer} has heads "
                         f"0..{config.n_head - 1}")
    name = f"blocks.{layer}.attn_z"
    where = (jnp.arange(config.n_head) == head)[:, None]  # (H, 1): this head, all of K
    return Replacement(name, jnp.zeros(()) if mean is None else mean[name], where)  # (T, H, K)


def mlp_ablation(config: Config, layer: int, mean: dict | None = None) -> Replacement:
    """Block `layer`'s MLP writes zeros, or with `mean` its mean output at each position."""
    _check_layer(config, layer)
    name = f"blocks.{layer}.mlp_out"
    return Replacement(name, jnp.zeros(()) if mean is None else mean[name], jnp.ones((), bool))


def patch(name: str, position: int, source: dict) -> Replacement:
    """Put back `source[name]` (the activations of another run, e.g. the clean one, from
    `forward(..., cache=True)`) at one position; every other position keeps its own."""
    value = source[name]  # (N, T, ...)
    T = value.shape[1]
    if not 0 <= position < T:
        raise ValueError(f"position {position} is outside the sequence of {T} tokens")
    trailing = (1,) * (value.ndim - 2)  # D, or H and K
    where = (jnp.arange(T) == position).reshape(T, *trailing)  # (T, 1, ...): one position
    return Replacement(name, value, where)


def mean_activations(params: Params, tokens, config: Config) -> dict[str, jax.Array]:
    """Every activation averaged over a reference batch [N, T]: name -> [T, ...]."""
    _, acts = _forward_cache(params, jnp.asarray(tokens), config)
    return {name: x.mean(axis=0) for name, x in acts.items()}  # (T, ...) each


# --- running ---------------------------------------------------------------------------


def hooks(replacements: list[Replacement]) -> dict[str, Hook]:
    """`forward`'s hooks for several replacements (at most one per activation name)."""
    names = [r.name for r in replacements]
    if len(set(names)) != len(names):
        raise ValueError(f"two replacements of the same activation: {names}; combine them into one")
    return {r.name: r.hook() for r in replacements}


def run(params: Params, tokens, config: Config, replacement: Replacement | None = None,
        *, cache: bool = False):  # fmt: skip
    """Logits [N, T, V] of `tokens` [N, T] with one activation replaced (or none).

    With `cache=True` also the activations, the replaced one as it was replaced.
    """
    tokens = jnp.asarray(tokens)  # (N, T)
    if replacement is None:
        return _forward_cache(params, tokens, config) if cache else _forward(params, tokens, config)
    if replacement.name not in activation_names(config):
        raise ValueError(f"no activation named {replacement.name!r}; see model.activation_names")
    return _run(params, tokens, config, replacement.name, jnp.asarray(replacement.value),
                jnp.asarray(replacement.where), cache)  # fmt: skip


@functools.partial(jax.jit, static_argnames="config")
def _forward(params: Params, tokens: jax.Array, config: Config) -> jax.Array:
    return forward(params, tokens, config)  # (N, T, V)


@functools.partial(jax.jit, static_argnames="config")
def _forward_cache(params: Params, tokens: jax.Array, config: Config):
    return forward(params, tokens, config, cache=True)  # (N, T, V), activations


@functools.partial(jax.jit, static_argnames=("config", "name", "cache"))
def _run(params: Params, tokens: jax.Array, config: Config, name: str, value: jax.Array,
         where: jax.Array, cache: bool):  # fmt: skip
    hook = functools.partial(_replace, value=value, where=where)
    return forward(params, tokens, config, cache=cache, hooks={name: hook})


# --- measures ----------------------------------------------------------------------------


def _targets(logits: jax.Array, tokens, positions) -> tuple[np.ndarray, np.ndarray]:
    """The logits at `positions` [A] and the tokens they should predict: [N, A, V], [N, A]."""
    positions = np.asarray(positions)
    tokens = np.asarray(tokens)
    return np.asarray(logits)[:, positions], tokens[:, positions + 1]


def forced_exact_match(logits: jax.Array, tokens, positions) -> float:
    """Share of problems whose every answer token is the top prediction, with the right
    answer fed in (teacher forcing). [N, T, V] logits of `tokens` [N, T]; `positions` [A]
    predict the answer tokens.

    For a greedy model this is exactly greedy exact match: while every prediction so far
    was right, greedy decoding has fed in the right answer too.
    """
    answer_logits, want = _targets(logits, tokens, positions)  # (N, A, V), (N, A)
    return float(np.all(answer_logits.argmax(-1) == want, axis=1).mean())


def logit_margin(logits: jax.Array, tokens, positions) -> np.ndarray:
    """The right token's logit minus the largest other logit, at each answer position:
    positive exactly when the right token is on top. -> [N, A]"""
    answer_logits, want = _targets(logits, tokens, positions)  # (N, A, V), (N, A)
    right = np.take_along_axis(answer_logits, want[..., None], axis=-1)[..., 0]  # (N, A)
    others = answer_logits.copy()
    np.put_along_axis(others, want[..., None], -np.inf, axis=-1)
    return right - others.max(-1)  # (N, A)


def logit_diff(logits: jax.Array, position: int, good, bad) -> np.ndarray:
    """logit[good] - logit[bad] at one position, per problem: how much the model prefers
    one answer token to another. [N, T, V] logits, [N] token ids each -> [N]"""
    at = np.asarray(logits)[:, position]  # (N, V)
    rows = np.arange(at.shape[0])
    return at[rows, np.asarray(good)] - at[rows, np.asarray(bad)]  # (N,)


def restored(patched: np.ndarray, clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
    """How much of the clean run's logit difference a patch brings back: 0 = none (the
    corrupted run), 1 = all (the clean run). Arrays of one shape -> that shape."""
    return (np.asarray(patched) - corrupted) / (np.asarray(clean) - corrupted)
