"""Figures: matplotlib, one fixed size and dpi for every figure minitf draws.

Each function draws one figure from numbers the library computed, labels its axes, gives
it a title that says what to notice, and writes a PNG. Left out: interactive plotting.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

# No backend is forced here: a notebook keeps its inline figures, and a script or CI
# machine without a display gets matplotlib's file-only Agg backend on its own.
FIGSIZE = (7.0, 4.0)  # inches
DPI = 100  # the lessons' figures and the library's share one resolution


def plot_loss(history: dict, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """The training loss per step (log scale) and, if measured, the task's metric.

    `history` is `TrainResult.history`: lists under "step", "loss" and optionally
    "eval_step" with "exact_match" (drawn on its own axis, 0 to 1) or "val_loss" (a
    validation loss, drawn on the loss's axis so the two curves compare). Returns the
    path of the PNG.
    """
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.plot(history["step"], history["loss"], lw=1, color="tab:blue", label="training loss")
    ax.set_yscale("log")  # the interesting part of a loss curve spans decades
    ax.set_xlabel("step")
    if "val_loss" in history:  # text: every token is scored
        ax.set_ylabel("cross-entropy (nats per token)")
        if history.get("eval_step"):
            ax.plot(history["eval_step"], history["val_loss"], "o-", color="tab:orange",
                    label="validation loss")  # fmt: skip
        ax.legend()
    else:
        ax.set_ylabel("cross-entropy on answer tokens (nats)", color="tab:blue")
    if history.get("eval_step") and "exact_match" in history:
        acc = ax.twinx()
        acc.plot(history["eval_step"], history["exact_match"], "o-", color="tab:orange")
        acc.set_ylim(-0.02, 1.02)
        acc.set_ylabel("exact match on held-out problems", color="tab:orange")
    default_title = "Loss falls in steps:\neach plateau ends when the model learns a new rule"
    ax.set_title(title or default_title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# --- the logit lens (minitf.lens, minitf.attribution, minitf.tuned_lens) -----------------
# These return the open Figure, so a notebook shows it and a lesson can add to it, and
# write a PNG when given a path. Close it with plt.close(fig) when drawing many.


def _finish(fig, path: str | os.PathLike | None):
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig


def plot_lens_heatmap(
    top_prob,
    cell_labels: list[list[str]],
    input_labels: list[str],
    layer_labels: list[str],
    path: str | os.PathLike | None = None,
    *,
    title: str,
):
    """Layers x positions, each cell naming the lens's top next token, coloured by its
    probability. top_prob (L+1, T); cell_labels[l][t] the top token's text. -> Figure
    """
    n_rows, T = len(layer_labels), len(input_labels)
    # one column per position, one row per layer: grows with the grid, fixed for a given one
    fig, ax = plt.subplots(figsize=(max(FIGSIZE[0], 2.5 + 0.6 * T), 1.8 + 0.5 * n_rows), dpi=DPI)
    image = ax.imshow(top_prob, vmin=0, vmax=1, cmap="Blues", aspect="auto", origin="lower")
    for l in range(n_rows):
        for t in range(T):
            color = "white" if top_prob[l][t] > 0.6 else "black"  # readable on dark cells
            ax.text(t, l, cell_labels[l][t], ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(T), input_labels)
    ax.set_yticks(range(n_rows), layer_labels)
    ax.set_xlabel("input token (each cell predicts the token that follows it)")
    ax.set_ylabel("residual stream read after")
    fig.colorbar(image, ax=ax, label="probability of the top token")
    ax.set_title(title, fontsize=9)
    return _finish(fig, path)


def plot_logit_attribution(
    labels: list[str],
    values,
    *,
    token: str,
    position: int,
    logit: float,
    path: str | os.PathLike | None = None,
    title: str | None = None,
):
    """One bar per model component: its direct push on a token's logit. -> Figure"""
    colors = [
        "tab:blue" if ".attn" in l else "tab:orange" if ".mlp" in l else "tab:gray" for l in labels
    ]
    fig, ax = plt.subplots(figsize=(max(FIGSIZE[0], 2 + 0.35 * len(labels)), 4.5), dpi=DPI)
    ax.bar(range(len(values)), values, color=colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_xlabel("component (gray: embeddings and final-norm bias, blue: attention, orange: MLP)")
    ax.set_ylabel(f"direct effect on the logit of {token!r}")
    ax.set_title(
        title
        or f"Who writes {token!r} after position {position}: the bars sum to its logit "
        f"{logit:.2f}; the tall ones do the work",
        fontsize=9,
    )
    return _finish(fig, path)


def plot_kl_per_layer(
    curves: dict,
    layer_labels: list[str],
    path: str | os.PathLike | None = None,
    *,
    title: str | None = None,
):
    """KL(final || lens) per layer, one line per lens: {"logit lens": (L+1,), ...}. -> Figure"""
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for label, kl in curves.items():
        ax.plot(range(len(kl)), kl, marker="o", label=label)
    ax.set_xticks(range(len(layer_labels)), layer_labels)
    ax.set_yscale("symlog", linthresh=1e-3)  # log-like, but the last layer's KL is exactly 0
    ax.set_ylim(bottom=0)  # KL is never negative
    ax.set_xlabel("residual stream read after")
    ax.set_ylabel("KL(final || lens), nats, mean over positions")
    ax.legend()
    ax.set_title(
        title
        or "The tuned lens reads early layers better: its predictions sit closer to "
        "the model's final ones",
        fontsize=9,
    )
    return _finish(fig, path)


def plot_first_top1_layer(
    steps,
    first_layer: dict,
    layer_labels: list[str],
    path: str | os.PathLike | None = None,
    *,
    title: str | None = None,
):
    """Per checkpoint, the first layer at which the answer is the lens's top-1 token.

    steps (C,); first_layer {line label: (C,) mean layer index}, where index
    len(layer_labels) means "never top-1, not even at the output". -> Figure
    """
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for label, layers in first_layer.items():
        ax.plot(steps, layers, marker="o", label=label)
    ax.set_yticks(range(len(layer_labels) + 1), [*layer_labels, "never"])
    ax.set_ylim(-0.3, len(layer_labels) + 0.3)
    ax.set_xlabel("training step")
    ax.set_ylabel("first layer with the answer on top (mean)")
    ax.legend(fontsize=8)
    ax.set_title(
        title or "When during training each answer digit reaches the top, and at which "
        "layer (lower: ready earlier)",
        fontsize=9,
    )
    return _finish(fig, path)


# --- other views: attention and the embedding (minitf.surgery's lessons use them too) ------


def plot_attention(
    patterns,
    token_labels: list[str],
    path: str | os.PathLike | None = None,
    *,
    title: str | None = None,
):
    """A grid of attention patterns: one heatmap per (layer, head), rows = layers.

    patterns (L, H, T, T), row t = where query position t looks (each row sums to 1):
    `np.stack([acts[f"blocks.{l}.attn_pattern"][0] for l in range(L)])` from
    `forward(params, tokens[None], config, cache=True)`. The lesson "What attention
    learned" reads them. -> Figure
    """
    patterns = np.asarray(patterns)  # (L, H, T, T)
    if patterns.ndim != 4 or patterns.shape[2] != patterns.shape[3]:
        raise ValueError(
            f"patterns must have shape (n_layer, n_head, T, T); got {patterns.shape}. "
            "Stack the cache's blocks.{l}.attn_pattern of one sequence."
        )
    L, H, T, _ = patterns.shape
    if len(token_labels) != T:
        raise ValueError(f"got {len(token_labels)} token labels for {T} positions; give one each")
    side = 1.2 + 0.22 * T  # inches per heatmap: room for the tick labels
    fig, axes = plt.subplots(
        L, H, figsize=(side * H + 1.0, side * L + 0.8), dpi=DPI, squeeze=False
    )
    for l in range(L):
        for h in range(H):
            ax = axes[l][h]
            ax.imshow(patterns[l, h], vmin=0, vmax=1, cmap="Blues")
            ax.set_xticks(range(T), token_labels, rotation=90, fontsize=6)
            ax.set_yticks(range(T), token_labels, fontsize=6)
            ax.set_title(f"layer {l} head {h}", fontsize=8)
            if l == L - 1:
                ax.set_xlabel("key (attended to)", fontsize=7)
            if h == 0:
                ax.set_ylabel("query (looking)", fontsize=7)
    fig.suptitle(
        title
        or "Attention per layer and head: dark cells are where each position reads from "
        "(everything above the diagonal is masked: no peeking ahead)",
        fontsize=9,
    )
    return _finish(fig, path)


def pca_2d(matrix) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their top two principal components. [N, D] -> [N, 2], [2]

    Returns the coordinates and the fraction of the variance each component explains.
    The lesson "Embeddings" has you write it with any number of components.
    """
    x = np.asarray(matrix, dtype=np.float64)  # (N, D)
    x = x - x.mean(axis=0, keepdims=True)  # (N, D): PCA is about spread around the mean
    _, s, vt = np.linalg.svd(x, full_matrices=False)  # s (min(N, D),), vt (min(N, D), D)
    explained = s**2 / max(float((s**2).sum()), 1e-30)  # (min(N, D),)
    return x @ vt[:2].T, explained[:2]  # (N, 2), (2,)


def plot_embeddings_pca(
    embeddings: dict,
    token_labels: list[str],
    path: str | os.PathLike | None = None,
    *,
    title: str | None = None,
    groups: list[str] | None = None,
):
    """Side-by-side 2-D PCA maps of embedding matrices, each point labelled by its token.

    embeddings {panel title: (V, D) matrix}, e.g. {"untrained": E0, "trained": E1}; each
    panel gets its own PCA (the axes of two models have nothing in common). `groups`,
    one name per token, colours the points by group (with a legend). The lesson
    "Embeddings" draws them.
    -> Figure
    """
    if groups is not None and len(groups) != len(token_labels):
        raise ValueError(f"got {len(groups)} group names for {len(token_labels)} tokens; "
                         "give one per token")  # fmt: skip
    names = list(dict.fromkeys(groups)) if groups is not None else []  # in order of appearance
    palette = plt.get_cmap("tab10")
    colors = ([palette(names.index(g) % 10) for g in groups] if groups is not None
              else ["tab:blue"] * len(token_labels))  # fmt: skip
    fig, axes = plt.subplots(
        1, len(embeddings), figsize=(5.0 * len(embeddings), 4.8), dpi=DPI, squeeze=False
    )
    for ax, (name, matrix) in zip(axes[0], embeddings.items(), strict=True):
        if len(matrix) != len(token_labels):
            raise ValueError(
                f"{name!r} has {len(matrix)} rows but {len(token_labels)} labels; give one "
                "label per token"
            )
        coords, explained = pca_2d(matrix)  # (V, 2), (2,)
        ax.scatter(coords[:, 0], coords[:, 1], s=12, c=colors, alpha=0.7)
        for (x, y), label, color in zip(coords, token_labels, colors, strict=True):
            ax.annotate(label, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points",
                        color="black" if groups is None else color)  # fmt: skip
        for k, group in enumerate(names):  # one legend entry per group
            ax.scatter([], [], s=12, color=palette(k % 10), label=group)
        if names:
            ax.legend(fontsize=7, loc="best")
        ax.set_xlabel(f"principal component 1 ({explained[0]:.0%} of the variance)")
        ax.set_ylabel(f"principal component 2 ({explained[1]:.0%})")
        ax.set_title(name, fontsize=9)
    fig.suptitle(
        title
        or "Token embeddings, 2-D PCA: random before training; after it, tokens the task "
        "treats alike sit together (digits in order)",
        fontsize=9,
    )
    return _finish(fig, path)
