"""Small PNG figures for the Dagster UI: evaluation scatter, residual histogram, validation curve,
the tuning study's history.

matplotlib is imported inside each function (its import costs about half a second) and drives the
Agg canvas directly: no pyplot, so no global figure state and no GUI backend is ever touched.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

# Small enough that a base64 copy in the event log stays a few tens of kilobytes.
_FIGSIZE = (5.0, 3.6)
_DPI = 80


def _render(draw) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_FIGSIZE, dpi=_DPI, layout="tight")
    FigureCanvasAgg(figure)
    draw(figure.subplots())
    sink = io.BytesIO()
    figure.savefig(sink, format="png")
    return sink.getvalue()


def predicted_vs_actual_png(actual: np.ndarray, predicted: np.ndarray) -> bytes:
    """Scatter of predicted against actual rings, with the y = x line."""
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)

    def draw(ax) -> None:
        low = float(min(actual.min(), predicted.min()))
        high = float(max(actual.max(), predicted.max()))
        ax.scatter(actual, predicted, s=8, alpha=0.5, edgecolors="none")
        ax.plot([low, high], [low, high], color="tab:red", linewidth=1, label="predicted = actual")
        ax.set_xlabel("actual rings")
        ax.set_ylabel("predicted rings")
        ax.set_title(f"Predicted vs actual (test split, n={len(actual)})")
        ax.legend(loc="upper left", fontsize=8)

    return _render(draw)


def residual_histogram_png(residuals: np.ndarray) -> bytes:
    """Histogram of actual - predicted rings."""
    residuals = np.asarray(residuals, dtype=np.float64)

    def draw(ax) -> None:
        ax.hist(residuals, bins=30, color="tab:blue", alpha=0.8)
        ax.axvline(0.0, color="tab:red", linewidth=1)
        ax.set_xlabel("residual (actual - predicted rings)")
        ax.set_ylabel("rows")
        ax.set_title(f"Residuals: mean {residuals.mean():.3f}, std {residuals.std():.3f}")

    return _render(draw)


def validation_curve_png(validation_rmse: Sequence[float]) -> bytes:
    """Validation RMSE per boosting round."""
    rmse = np.asarray(validation_rmse, dtype=np.float64)

    def draw(ax) -> None:
        rounds = np.arange(1, len(rmse) + 1)
        ax.plot(rounds, rmse, marker="o", markersize=2.5, linewidth=1)
        best = int(np.argmin(rmse))
        ax.scatter([rounds[best]], [rmse[best]], color="tab:red", zorder=3, s=20)
        ax.annotate(
            f"best {rmse[best]:.3f} @ round {rounds[best]}",
            (rounds[best], rmse[best]),
            textcoords="offset points",
            xytext=(0, 10),
            ha="right",
            fontsize=8,
        )
        ax.set_xlabel("boosting round")
        ax.set_ylabel("validation RMSE")
        ax.set_title("Validation RMSE per round")

    return _render(draw)


def tuning_history_png(numbers: Sequence[int], cv_rmse: Sequence[float]) -> bytes:
    """Each trial's cross-validated RMSE, and the best so far, in trial order."""
    numbers_array = np.asarray(numbers, dtype=np.int64)
    rmse = np.asarray(cv_rmse, dtype=np.float64)

    def draw(ax) -> None:
        order = np.argsort(numbers_array)
        x, y = numbers_array[order], rmse[order]
        ax.scatter(x, y, s=10, alpha=0.6, edgecolors="none", label="trial")
        ax.step(x, np.minimum.accumulate(y), where="post", color="tab:red", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("cross-validated RMSE (train split)")
        ax.set_title(f"Tuning: {len(y)} trials, best {y.min():.4f}")
        # A few wild early trials would otherwise flatten the part worth seeing.
        ax.set_ylim(top=float(np.quantile(y, 0.9)) + 0.05 * float(np.ptp(y) or 1.0))
        ax.legend(loc="upper right", fontsize=8)

    return _render(draw)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that Dagster's UI renders as the picture itself (a data: URI, no file server)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def evaluation_figures(actual: np.ndarray, predicted: np.ndarray) -> dict[str, bytes]:
    """The test split's predicted-vs-actual scatter and residual histogram, as PNG bytes."""
    return {
        "predicted_vs_actual": predicted_vs_actual_png(actual, predicted),
        "residual_histogram": residual_histogram_png(actual - predicted),
    }
