"""The attention grid and the embedding PCA map: each returns a Figure and writes a PNG."""

from __future__ import annotations

from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from minitf.model import Config, forward, init_params
from minitf.plots import pca_2d, plot_attention, plot_embeddings_pca

CONFIG = Config(vocab_size=12, n_layer=2, n_head=2, d_model=16, d_mlp=32, max_len=8)
LABELS = list("0123456789+=")


def test_plot_attention_grid(tmp_path: Path) -> None:
    params = init_params(CONFIG, jax.random.key(0))
    tokens = np.array([1, 2, 10, 3, 4, 11])  # "12+34="
    _, acts = forward(params, tokens[None], CONFIG, cache=True)
    patterns = np.stack([acts[f"blocks.{l}.attn_pattern"][0] for l in range(2)])  # (L, H, T, T)
    path = tmp_path / "attention.png"
    fig = plot_attention(patterns, [LABELS[t] for t in tokens], path)
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # 2 layers x 2 heads
    assert fig.axes[0].get_title() == "layer 0 head 0"
    assert path.stat().st_size > 1000
    plt.close(fig)
    with pytest.raises(ValueError, match="one each"):
        plot_attention(patterns, LABELS[:3])
    with pytest.raises(ValueError, match="n_layer, n_head"):
        plot_attention(patterns[0], LABELS[:6])


def test_plot_embeddings_pca_side_by_side(tmp_path: Path) -> None:
    untrained = init_params(CONFIG, jax.random.key(0))["embed"]  # (V, D)
    # a "trained" embedding whose digits lie on a line: PCA's first axis orders them
    line = np.linspace(-1, 1, 12)[:, None] * np.ones((1, 16))  # (V, D)
    path = tmp_path / "pca.png"
    fig = plot_embeddings_pca({"untrained": untrained, "trained": line}, LABELS, path)
    assert isinstance(fig, Figure) and [a.get_title() for a in fig.axes] == ["untrained", "trained"]
    assert path.stat().st_size > 1000
    plt.close(fig)
    coords, explained = pca_2d(line)  # (V, 2), (2,)
    assert explained[0] == pytest.approx(1.0)
    assert np.all(np.diff(coords[:, 0]) > 0) or np.all(np.diff(coords[:, 0]) < 0)
    with pytest.raises(ValueError, match="one label per token"):
        plot_embeddings_pca({"trained": line}, LABELS[:5])
