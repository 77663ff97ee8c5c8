"""PNG plots, written atomically (headless matplotlib, Agg backend)."""

from __future__ import annotations

import io
from pathlib import Path

from kws.io import atomic_write_bytes


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed).

    Imported here, not at module top: choosing the Agg backend is a process-wide side effect
    that importing kws must not have on a user's own plotting.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path, dpi: int = 100) -> Path:
    """Lay out, render to PNG in memory, write atomically, close the figure."""
    plt = pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
