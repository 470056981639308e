"""Attention heatmaps (matplotlib is imported only when a picture is asked for).

A heatmap shows the weights the search kept per output step; for multi-head attention these
are the heads' mean (nmt.attention.MultiHeadAttention), one picture per sentence as for one head.
"""

from __future__ import annotations

from pathlib import Path

import torch


def attention_figure(weights: torch.Tensor, src_pieces: list[str], tgt_pieces: list[str]):
    """A matplotlib Figure of weights [T, S]: target pieces down, source pieces across."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    rows, cols = weights.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * cols + 1.5), max(3.0, 0.35 * rows + 1.0)))
    ax.imshow(weights.float().numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), src_pieces[:cols], rotation=90, fontsize=8)
    ax.set_yticks(range(rows), tgt_pieces[:rows], fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    return fig


def save_attention_plot(path: Path, weights: torch.Tensor, src_pieces: list[str], tgt_pieces: list[str]) -> None:
    """Write the heatmap of weights [T, S] as a PNG file."""
    import matplotlib.pyplot as plt

    fig = attention_figure(weights, src_pieces, tgt_pieces)
    fig.savefig(path, dpi=100)
    plt.close(fig)
