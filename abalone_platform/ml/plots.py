"""Small PNG figures for the Dagster UI: evaluation scatter, residual histogram, validation curve,
the tuning study's history.

matplotlib is imported inside each function (its import costs about half a second) and drives the
Agg canvas directly: no pyplot, so no global figure state and no GUI backend is ever touched.

A run that draws figures starts a renderer process when it starts (``start_renderer``, from the
artifact store's setup): a plain interpreter that imports matplotlib while the run's first steps
compute, on the machine's other core, and then draws each figure with these same functions,
so that the run never pays matplotlib's import. The PNG bytes are the same as drawing here (the
same code, library and settings; tested), the renderer's warnings are re-issued here, and
whenever it cannot answer (not started, died, an error) the figure is drawn here as before, so
an error is raised here exactly as it would have been. It ends when its input closes: when the
run's process exits or dies, or ``stop_renderer`` is called.
"""

from __future__ import annotations

import atexit
import base64
import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

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


def _predicted_vs_actual_png(actual: np.ndarray, predicted: np.ndarray) -> bytes:
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


def _residual_histogram_png(residuals: np.ndarray) -> bytes:
    """Histogram of actual - predicted rings."""
    residuals = np.asarray(residuals, dtype=np.float64)

    def draw(ax) -> None:
        ax.hist(residuals, bins=30, color="tab:blue", alpha=0.8)
        ax.axvline(0.0, color="tab:red", linewidth=1)
        ax.set_xlabel("residual (actual - predicted rings)")
        ax.set_ylabel("rows")
        ax.set_title(f"Residuals: mean {residuals.mean():.3f}, std {residuals.std():.3f}")

    return _render(draw)


def _validation_curve_png(validation_rmse: Sequence[float]) -> bytes:
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


def _tuning_history_png(numbers: Sequence[int], cv_rmse: Sequence[float]) -> bytes:
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


def predicted_vs_actual_png(actual: np.ndarray, predicted: np.ndarray) -> bytes:
    """Scatter of predicted against actual rings, with the y = x line."""
    return _draw("predicted_vs_actual_png", actual, predicted)


def residual_histogram_png(residuals: np.ndarray) -> bytes:
    """Histogram of actual - predicted rings."""
    return _draw("residual_histogram_png", residuals)


def validation_curve_png(validation_rmse: Sequence[float]) -> bytes:
    """Validation RMSE per boosting round."""
    return _draw("validation_curve_png", validation_rmse)


def tuning_history_png(numbers: Sequence[int], cv_rmse: Sequence[float]) -> bytes:
    """Each trial's cross-validated RMSE, and the best so far, in trial order."""
    return _draw("tuning_history_png", numbers, cv_rmse)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that Dagster's UI renders as the picture itself (a data: URI, no file server)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def evaluation_figures(actual: np.ndarray, predicted: np.ndarray) -> dict[str, bytes]:
    """The test split's predicted-vs-actual scatter and residual histogram, as PNG bytes."""
    return {
        "predicted_vs_actual": predicted_vs_actual_png(actual, predicted),
        "residual_histogram": residual_histogram_png(actual - predicted),
    }


# --- The renderer process ------------------------------------------------------------------------

_DRAWINGS: dict[str, Callable[..., bytes]] = {
    "predicted_vs_actual_png": _predicted_vs_actual_png,
    "residual_histogram_png": _residual_histogram_png,
    "validation_curve_png": _validation_curve_png,
    "tuning_history_png": _tuning_history_png,
}
# An answer slower than this (a renderer stuck behind a busy machine) is not waited for: the
# figure is drawn here instead.
_ANSWER_TIMEOUT_S = 120.0
# The renderer's warnings, re-issued here, are shown once per place as the default filter does.
_WARNING_REGISTRY: dict = {}


def _write_frame(stream: BinaryIO, payload: object) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("!Q", len(data)) + data)
    stream.flush()


def _read_frame(stream: BinaryIO) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("renderer stream closed")
    (size,) = struct.unpack("!Q", header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("renderer stream closed")
    return pickle.loads(data)


class _Renderer:
    """The renderer process and the pipe to it (one request at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # A process forked from this one shares the pipe: only the starting process uses it.
        self._owner = os.getpid()
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", "from abalone_platform.ml.plots import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Its own process group: a Ctrl-C meant for the run is the run's to handle.
            start_new_session=True,
        )

    def draw(self, name: str, args: tuple) -> bytes | None:
        """The figure's PNG bytes, or None when the renderer cannot give them."""
        if os.getpid() != self._owner:
            return None
        with self._lock:
            process = self._process
            if process is None:
                return None
            if process.poll() is not None:  # it died: draw here from now on
                self._stop_locked()
                return None
            try:
                _write_frame(process.stdin, (name, args))
                answer = self._answer(process)
            except Exception:  # a broken pipe, a dead renderer: draw here
                self._stop_locked()
                return None
            except BaseException:  # interrupted mid-request: the pipe is out of step
                self._stop_locked()
                raise
        ok, payload, caught = answer
        if not ok:
            return None  # drawn here, which raises (and warns) as it always did
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno, registry=_WARNING_REGISTRY)
        return payload

    def _answer(self, process: subprocess.Popen[bytes]) -> tuple:
        result: list = []

        def read() -> None:
            try:
                result.append(_read_frame(process.stdout))
            except BaseException as exc:  # noqa: BLE001 (reported by the caller)
                result.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(_ANSWER_TIMEOUT_S)
        if not result:
            raise TimeoutError("no answer from the figure renderer")
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    def _stop_locked(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # Its input closed, the renderer exits at once (os._exit); one that does not is killed.
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()


_renderer: _Renderer | None = None
_renderer_lock = threading.Lock()


def start_renderer() -> None:
    """Start the renderer process (once per process; ``ABALONE_FIGURE_RENDERER=0``: never)."""
    global _renderer
    if os.environ.get("ABALONE_FIGURE_RENDERER", "1") == "0":
        return
    with _renderer_lock:
        if _renderer is None:
            try:
                _renderer = _Renderer()
            except OSError:
                return  # figures are drawn here
            atexit.register(stop_renderer)


def stop_renderer() -> None:
    """Stop the renderer process, if any (figures are then drawn here)."""
    global _renderer
    with _renderer_lock:
        renderer, _renderer = _renderer, None
    if renderer is not None and renderer._owner == os.getpid():
        renderer.stop()


def _draw(name: str, *args: object) -> bytes:
    renderer = _renderer
    if renderer is not None:
        png = renderer.draw(name, args)
        if png is not None:
            return png
    return _DRAWINGS[name](*args)


def _serve() -> None:
    """The renderer process: matplotlib imported first, then one figure per request."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed may corrupt the answers
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401

    while True:
        try:
            name, args = _read_frame(stdin)
        except EOFError:
            # Nothing to clean up, and an interpreter holding matplotlib takes a while to tear
            # down: the run that waits for this exit should not.
            os._exit(0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                answer = (True, _DRAWINGS[name](*args))
            except Exception as exc:  # the run draws it itself, and raises it there
                answer = (False, repr(exc))
        _write_frame(
            stdout,
            (
                *answer,
                [(str(w.message), w.category, w.filename, w.lineno) for w in caught],
            ),
        )
