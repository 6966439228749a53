"""Time-series figures for the HTML reports, as inline PNGs (matplotlib, no screen needed)."""

from __future__ import annotations

import base64
import io
from typing import Any


def time_axes(title: str) -> tuple[Any, Any]:
    """A wide, short figure for one key's series; matplotlib is imported only when a report is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 2.8))
    ax.set_title(title)
    return fig, ax


def finish_png(fig: Any, ax: Any) -> str:
    """Date axis, legend, and the figure as base64 PNG for a data: URI; the figure is closed."""
    import matplotlib.pyplot as plt

    ax.xaxis_date()
    ax.legend(loc="upper left", fontsize=7)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()
