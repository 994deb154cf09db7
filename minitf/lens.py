"""The logit lens: what would the model predict if this layer were the last?

Every block adds its output to the residual stream, and the model reads its prediction
off the last residual with the final layer norm and the unembedding (`lm_head`). The
logit lens applies that same readout to the residual after every layer: row 0 is the
embeddings (no block has run yet), row l is the stream after the first l blocks, and the
last row is the model's own output. Early rows are mostly noise; later rows refine
toward the answer.

`logit_lens` computes the rows from `forward`'s activation cache, so nothing is
computed twice; `LensResult` answers questions about them (top-k, rank and probability of
a token per layer, KL to the final distribution) and shows them as a text table or a
heatmap. Both take an optional `translate` of the residuals before the readout, which is
how `minitf.tuned_lens` builds a learned lens on this one.

`LensResult` holds one sequence, which is what a person reads; `lens_log_probs` and
`first_top1_layers` do whole batches, for statistics over many problems.

Left out on purpose: what each block contributed (`minitf.attribution`) and learning a
translation per layer (`minitf.tuned_lens`), each in its own module.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from minitf.model import Config, Params, forward, logits_from_resid
from minitf.tokens import TokenizerLike, display_token

# [L+1, ..., D] residuals -> [L+1, ..., D]: how a lens may re-express each layer first
Translate = Callable[[jax.Array], jax.Array]


# --- the lens ----------------------------------------------------------------------------


def layer_names(n_layer: int) -> list[str]:
    """Row labels: 'embed' for the embeddings, 'block i' for the stream after block i."""
    return ["embed"] + [f"block {i}" for i in range(n_layer)]


@dataclasses.dataclass
class LensResult:
    """The lens's predictions for one sequence, layer by layer (the lesson "The logit lens").

    `log_probs[l, t]` is the log-distribution over the token after position t, read off
    the residual stream after the first l blocks (l = 0: the embeddings alone).
    """

    log_probs: np.ndarray  # (L+1, T, V): log-softmax of each layer's lens logits
    tokens: np.ndarray  # (T,): the input sequence
    tokenizer: TokenizerLike | None = None  # for display only; None shows ids
    name: str = "logit lens"  # "tuned lens" when the residuals were translated first

    @property
    def n_rows(self) -> int:
        return self.log_probs.shape[0]  # L+1

    def _position(self, position: int) -> int:
        T = self.log_probs.shape[1]
        if not -T <= position < T:
            raise ValueError(
                f"position {position} is outside the sequence of {T} tokens; "
                f"use 0..{T - 1} (or -1 for the last)"
            )
        return position % T

    def _token(self, token_id: int) -> int:
        V = self.log_probs.shape[2]
        if not 0 <= int(token_id) < V:
            raise ValueError(f"token id {token_id} is not in the vocabulary; use 0..{V - 1}")
        return int(token_id)

    def top_k(self, k: int, position: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """The k likeliest next tokens at `position`, per layer: ids and probabilities.

        -> ids (L+1, k) int, probs (L+1, k) float, best first.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1 (how many tokens to list); got {k}")
        rows = self.log_probs[:, self._position(position)]  # (L+1, V)
        # stable sort of the negated log-probs: ties keep the lower id first
        ids = np.argsort(-rows, axis=-1, kind="stable")[:, :k]  # (L+1, k)
        probs = np.exp(np.take_along_axis(rows, ids, axis=-1))  # (L+1, k)
        return ids, probs

    def prob(self, token_id: int, position: int = -1) -> np.ndarray:
        """Probability of `token_id` coming next after `position`, per layer. -> (L+1,)"""
        return np.exp(self.log_probs[:, self._position(position), self._token(token_id)])  # (L+1,)

    def rank(self, token_id: int, position: int = -1) -> np.ndarray:
        """Rank of `token_id` per layer: 0 means it is the top prediction. -> (L+1,) int

        The rank counts the tokens that are strictly likelier, so ties share a rank.
        """
        rows = self.log_probs[:, self._position(position)]  # (L+1, V)
        target = rows[:, self._token(token_id)]  # (L+1,)
        return (rows > target[:, None]).sum(axis=-1)  # (L+1,)

    def first_top1_layer(self, token_id: int, position: int = -1) -> int | None:
        """The first row at which `token_id` is the top prediction, or None if never."""
        hits = np.flatnonzero(self.rank(token_id, position) == 0)  # (n_hits,)
        return int(hits[0]) if hits.size else None

    def kl_to_final(self) -> np.ndarray:
        """KL(final || layer) in nats, per layer and position. -> (L+1, T)

        The direction asks: how many extra nats would it cost to code the model's real
        predictions with this layer's? Zero for the last row, by definition.
        """
        final = self.log_probs[-1:]  # (1, T, V)
        return (np.exp(final) * (final - self.log_probs)).sum(axis=-1)  # (L+1, T)

    def table(self, position: int = -1, k: int = 3) -> str:
        """Plain text: one row per layer, its top-k next tokens with probabilities."""
        p = self._position(position)
        ids, probs = self.top_k(k, p)  # (L+1, k) each
        cells = [
            [f"{display_token(self.tokenizer, i)} {q:.1%}" for i, q in zip(r, s, strict=True)]
            for r, s in zip(ids, probs, strict=True)
        ]
        rows = [["layer"] + [f"top {j + 1}" for j in range(k)]]
        rows += [
            [name] + row for name, row in zip(layer_names(self.n_rows - 1), cells, strict=True)
        ]
        widths = [max(len(row[j]) for row in rows) for j in range(k + 1)]  # per column
        separator = self.tokenizer.separator if self.tokenizer is not None else ""
        context = separator.join(display_token(self.tokenizer, t) for t in self.tokens[: p + 1])
        lines = [f"{self.name}: the token after position {p}, having read {context}"]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        return "\n".join(lines)

    def plot(self, path: str | Path | None = None, *, title: str | None = None):
        """Heatmap layers x positions: each cell shows the top next token, coloured by its
        probability. Returns the matplotlib Figure; also writes a PNG when `path` is given.
        """
        from minitf.plots import plot_lens_heatmap  # matplotlib only when drawing

        top_ids = self.log_probs.argmax(axis=-1)  # (L+1, T): top token per cell
        return plot_lens_heatmap(
            top_prob=np.exp(self.log_probs.max(axis=-1)),  # (L+1, T)
            cell_labels=[[display_token(self.tokenizer, i) for i in row] for row in top_ids],
            input_labels=[display_token(self.tokenizer, t) for t in self.tokens],
            layer_labels=layer_names(self.n_rows - 1),
            path=path,
            title=title
            or f"{self.name}: the prediction forms layer by layer "
            "(early rows guess, later rows settle)",
        )


def residual_stack(acts: dict, n_layer: int) -> jax.Array:
    """The residual stream after 0, 1, ..., L blocks, from forward's cache. -> [L+1, B, T, D]"""
    rows = [acts["blocks.0.resid_pre"]] + [acts[f"blocks.{l}.resid_post"] for l in range(n_layer)]
    return jnp.stack(rows)  # (L+1, B, T, D)


@functools.partial(jax.jit, static_argnames="config")
def residuals(params: Params, tokens: jax.Array, config: Config) -> jax.Array:
    """One forward pass with the activation cache: [B, T] int -> [L+1, B, T, D]."""
    _, acts = forward(params, tokens, config, cache=True)
    return residual_stack(acts, config.n_layer)  # (L+1, B, T, D)


def lens_log_probs(
    params: Params, tokens: jax.Array, config: Config, translate: Translate | None = None
) -> jax.Array:
    """The lens for a batch: [B, T] int tokens -> log_probs [L+1, B, T, V].

    Each layer's residual (first re-expressed by `translate`, if given) goes through the
    model's own final norm and unembedding: the readout the model applies to its last
    residual. The lesson "The logit lens" explains it.
    """
    resids = residuals(params, tokens, config)  # (L+1, B, T, D)
    if translate is not None:
        resids = translate(resids)  # (L+1, B, T, D)
    return _readout(params, resids, config)  # (L+1, B, T, V)


@functools.partial(jax.jit, static_argnames="config")
def _readout(params: Params, resids: jax.Array, config: Config) -> jax.Array:
    return jax.nn.log_softmax(logits_from_resid(params, config, resids))  # (..., V)


def logit_lens(
    params: Params,
    config: Config,
    tokens,
    *,
    tokenizer: TokenizerLike | None = None,
    translate: Translate | None = None,
    name: str = "logit lens",
) -> LensResult:
    """Read the model's prediction off the residual stream after every layer.

    [T] int tokens -> LensResult with log_probs [L+1, T, V]. `translate` re-expresses
    the residuals first (`minitf.tuned_lens` passes its learned translators and the name
    "tuned lens"). `tokenizer` is only used to display tokens.
    The lesson "The logit lens" explains it.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(
            f"logit_lens looks at one sequence: tokens must be 1-D; got shape "
            f"{tokens.shape}. Pass tokens[0] for the first sequence of a batch."
        )
    # forward checks the length and dtype with messages that say how to fix them
    log_probs = lens_log_probs(params, tokens[None], config, translate)[:, 0]  # (L+1, T, V)
    return LensResult(log_probs=np.asarray(log_probs), tokens=np.asarray(tokens),
                      tokenizer=tokenizer, name=name)  # fmt: skip


def first_top1_layers(params: Params, config: Config, tokens, positions) -> np.ndarray:
    """For many sequences at once: the first layer at which the lens's top-1 token after
    each of `positions` is the token that really comes next.

    [N, T] int tokens (teacher-forced: the whole problem, answer included), positions
    (A,) -> [N, A] int, a row index 0..L, or L + 1 where not even the output gets it right.
    The lesson "The logit lens".
    """
    tokens = jnp.asarray(tokens)
    positions = np.asarray(positions)  # (A,)
    if (
        tokens.ndim != 2
        or positions.ndim != 1
        or not np.all((positions >= 0) & (positions < tokens.shape[1] - 1))
    ):
        raise ValueError(
            f"need tokens (N, T) and positions (A,) in 0..T-2 (the next token must exist); "
            f"got tokens {tokens.shape} and positions {positions.tolist()}"
        )
    log_probs = lens_log_probs(params, tokens, config)[:, :, positions]  # (L+1, N, A, V)
    targets = tokens[:, positions + 1]  # (N, A): the token that comes next
    target_lp = jnp.take_along_axis(log_probs, targets[None, :, :, None], axis=-1)  # (L+1,N,A,1)
    on_top = (log_probs <= target_lp).all(axis=-1)  # (L+1, N, A): nothing beats the target
    never = config.n_layer + 1
    first = jnp.where(on_top.any(axis=0), jnp.argmax(on_top, axis=0), never)  # (N, A)
    return np.asarray(first)


@dataclasses.dataclass(frozen=True)
class LensDepth:
    """Where, in depth, the model's final prediction appears, for many positions at once."""

    ranks: np.ndarray  # (L+1, N, T): rank per lens row of the model's final top-1 token
    kl: np.ndarray  # (L+1, N, T): KL(final || row) in nats

    @property
    def first_top1(self) -> np.ndarray:
        """The first row at which the final top-1 token is the lens's top-1. -> (N, T) int

        Always defined: on the last row (the model's output) it is on top by definition.
        """
        return np.argmax(self.ranks == 0, axis=0)  # (N, T)


def lens_depth(params: Params, config: Config, tokens, *, translate: Translate | None = None,
               batch_size: int = 32) -> LensDepth:  # fmt: skip
    """For every position of many sequences: the rank, under each row of the lens, of the
    token the model finally puts on top, and each row's KL to the final distribution.

    [N, T] int tokens -> LensDepth with (L+1, N, T) arrays. Unlike `first_top1_layers`
    this follows the model's own prediction, right or wrong: the question is where in
    depth the answer forms, not whether it is correct. `translate`: as in `logit_lens`
    (the tuned lens). Runs `batch_size` sequences at a time, so the (L+1, N, T, V)
    log-probabilities never exist at once. The lesson "The logit lens" uses it on text.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"lens_depth takes a batch of sequences (N, T); got shape {tokens.shape}")
    ranks, kls = [], []
    for start in range(0, len(tokens), batch_size):
        resids = residuals(params, jnp.asarray(tokens[start : start + batch_size]), config)
        if translate is not None:
            resids = translate(resids)  # (L+1, b, T, D)
        r, k = _depth_of(params, resids, config)  # (L+1, b, T) each
        ranks.append(np.asarray(r))
        kls.append(np.asarray(k))
    return LensDepth(np.concatenate(ranks, axis=1), np.concatenate(kls, axis=1))


@functools.partial(jax.jit, static_argnames="config")
def _depth_of(params: Params, resids: jax.Array, config: Config) -> tuple[jax.Array, jax.Array]:
    log_probs = _readout(params, resids, config)  # (L+1, b, T, V)
    final = log_probs[-1]  # (b, T, V): the model's own output
    top = jnp.argmax(final, axis=-1)  # (b, T)
    top_lp = jnp.take_along_axis(log_probs, top[None, ..., None], axis=-1)  # (L+1, b, T, 1)
    ranks = (log_probs > top_lp).sum(axis=-1)  # (L+1, b, T): tokens strictly likelier
    kl = (jnp.exp(final)[None] * (final[None] - log_probs)).sum(axis=-1)  # (L+1, b, T)
    return ranks, kl
