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
heatmap. `display_token` prints any token readably, byte-level BPE pieces included.

`LensResult` holds one sequence, which is what a person reads; `lens_log_probs` and
`first_top1_layers` do whole batches, for statistics over many problems.

Left out on purpose: what each block contributed (`minitf.attribution`) and a learned
translation per layer (`minitf.tuned_lens`), each in its own module.

Shape letters as in `minitf.model`: L n_layer, T sequence, D d_model, V vocab size.
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from minitf.model import Config, Params, forward, logits_from_resid

if TYPE_CHECKING:
    from minitf.tuned_lens import TunedLens

SPACE = "␣"  # how a space inside a token is shown, so "␣the" and "the" look different


# --- showing tokens ----------------------------------------------------------------------


def _visible(text: str) -> str:
    """Make whitespace and control characters visible: ' ' -> '␣', '\\n' -> '\\n'."""
    out = []
    for ch in text:
        if ch == " ":
            out.append(SPACE)
        elif ch in "\n\t\r":
            out.append(repr(ch)[1:-1])  # the two characters backslash-n, backslash-t, ...
        elif unicodedata.category(ch).startswith(("C", "Z")):  # other control / odd spaces
            out.append("".join(f"<0x{b:02X}>" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def _bytes_to_display(raw: bytes) -> str:
    """Decode what is valid UTF-8 and show every other byte as `<0xF0>`."""
    parts = []
    while raw:
        try:
            parts.append(_visible(raw.decode("utf-8")))
            break
        except UnicodeDecodeError as err:
            parts.append(_visible(raw[: err.start].decode("utf-8")))
            parts.append("".join(f"<0x{b:02X}>" for b in raw[err.start : err.end]))
            raw = raw[err.end :]
    return "".join(parts)


def display_token(tokenizer: Any, token_id: int) -> str:
    """One token as readable text, for tables and plot labels.

    - Byte-level BPE (`minitf.bpe.Tokenizer`, which has `token_bytes`): the token's bytes
      decoded as UTF-8, a space shown as '␣' (GPT-2's printable form would show 'Ġ', and
      'Ã©' for 'é'), and bytes that are only part of a character shown as `<0xF0>`.
    - Character tokenizers (`minitf.chars.CharTokenizer`, which has `token_str`): the
      character, with whitespace made visible the same way.
    - No tokenizer: the id in brackets, `[17]`.

    >>> from minitf.chars import CharTokenizer
    >>> display_token(CharTokenizer("ab "), 2)
    '␣'
    >>> display_token(None, 17)
    '[17]'
    """
    token_id = int(token_id)
    if tokenizer is None:
        return f"[{token_id}]"
    if hasattr(tokenizer, "token_bytes"):
        return _bytes_to_display(tokenizer.token_bytes(token_id))
    return _visible(tokenizer.token_str(token_id))


# --- the lens ----------------------------------------------------------------------------


def layer_names(n_layer: int) -> list[str]:
    """Row labels: 'embed' for the embeddings, 'block i' for the stream after block i."""
    return ["embed"] + [f"block {i}" for i in range(n_layer)]


@dataclasses.dataclass
class LensResult:
    """The lens's predictions for one sequence, layer by layer (lesson 8).

    `log_probs[l, t]` is the log-distribution over the token after position t, read off
    the residual stream after the first l blocks (l = 0: the embeddings alone).
    """

    log_probs: np.ndarray  # (L+1, T, V): log-softmax of each layer's lens logits
    tokens: np.ndarray  # (T,): the input sequence
    tokenizer: Any = None  # for display only; None shows ids
    name: str = "logit lens"  # "tuned lens" when a TunedLens translated the stream

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
        separator = getattr(self.tokenizer, "separator", "")  # " " between whole words
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


@functools.partial(jax.jit, static_argnames="config")
def lens_log_probs(
    params: Params, tokens: jax.Array, config: Config, tuned: TunedLens | None = None
) -> jax.Array:
    """The lens for a batch: [B, T] int tokens -> log_probs [L+1, B, T, V]. Lesson 8.

    Each layer's residual (translated by `tuned` if given) goes through the model's own
    final norm and unembedding: the readout the model applies to its last residual.
    """
    resids = residuals(params, tokens, config)  # (L+1, B, T, D)
    if tuned is not None:
        resids = tuned.translate(resids)  # (L+1, B, T, D)
    return jax.nn.log_softmax(logits_from_resid(params, config, resids))  # (L+1, B, T, V)


def logit_lens(
    params: Params,
    config: Config,
    tokens,
    *,
    tokenizer: Any = None,
    tuned: TunedLens | None = None,
) -> LensResult:
    """Read the model's prediction off the residual stream after every layer.

    [T] int tokens -> LensResult with log_probs [L+1, T, V]. With `tuned`, each layer's
    residual first goes through that layer's learned translator (see `minitf.tuned_lens`).
    `tokenizer` is only used to display tokens. Lesson 8 explains it.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(
            f"logit_lens looks at one sequence: tokens must be 1-D; got shape "
            f"{tokens.shape}. Pass tokens[0] for the first sequence of a batch."
        )
    # forward checks the length and dtype with messages that say how to fix them
    log_probs = lens_log_probs(params, tokens[None], config, tuned)[:, 0]  # (L+1, T, V)
    return LensResult(
        log_probs=np.asarray(log_probs),
        tokens=np.asarray(tokens),
        tokenizer=tokenizer,
        name="tuned lens" if tuned is not None else "logit lens",
    )


def first_top1_layers(params: Params, config: Config, tokens, positions) -> np.ndarray:
    """For many sequences at once: the first layer at which the lens's top-1 token after
    each of `positions` is the token that really comes next.

    [N, T] int tokens (teacher-forced: the whole problem, answer included), positions
    (A,) -> [N, A] int, a row index 0..L, or L + 1 where not even the output gets it right.
    Lesson 8.
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


def lens_over_training(
    snapshots: list[tuple[int, Params]], config: Config, task: Any, *, n: int = 200, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """First top-1 layer of every answer digit, per snapshot and problem (lens over training;
    snapshots from `train(snapshot_every=...)`, lesson 8).

    -> steps (C,), first (C, n, A): a layer 0..L, or L + 1 where never top-1.
    """
    prompts, answers = task.problems(np.random.default_rng(seed), n, "test")  # (n, P), (n, A)
    tokens = np.concatenate([prompts, answers], axis=1)  # (n, T)
    positions = np.arange(task.prompt_len - 1, task.seq_len - 1)  # (A,): where each is predicted
    steps = np.array([step for step, _ in snapshots])  # (C,)
    first = np.stack([first_top1_layers(p, config, tokens, positions) for _, p in snapshots])
    return steps, first  # (C,), (C, n, A)
