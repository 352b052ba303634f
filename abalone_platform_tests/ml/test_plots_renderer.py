"""The figure renderer process (ml/plots.py): the same PNG bytes as drawing in this process,
errors raised here as before, a dead renderer replaced by drawing here, and started only for
runs whose steps draw figures."""

from __future__ import annotations

import os
import signal

import dagster as dg
import numpy as np
import pytest

from abalone_platform.defs.shared.resources import draws_figures
from abalone_platform.ml import plots


@pytest.fixture
def renderer():
    plots.stop_renderer()
    plots.start_renderer()
    assert plots._renderer is not None
    yield plots._renderer
    plots.stop_renderer()


def figures() -> dict[str, tuple]:
    rng = np.random.default_rng(7)
    actual = rng.normal(10, 3, 300)
    predicted = actual + rng.normal(0, 2, 300)
    return {
        "predicted_vs_actual_png": (actual, predicted),
        "residual_histogram_png": (actual - predicted,),
        "validation_curve_png": (list(np.linspace(3.0, 2.1, 50)),),
        "tuning_history_png": ([0, 1, 2, 3], [3.0, 2.5, 2.7, 2.2]),
    }


def test_the_renderer_draws_the_same_bytes(renderer) -> None:
    for name, args in figures().items():
        here = plots._DRAWINGS[name](*args)
        assert here.startswith(b"\x89PNG")
        assert renderer.draw(name, args) == here, name
        assert getattr(plots, name)(*args) == here, name


def test_an_error_is_raised_here_as_before(renderer) -> None:
    with pytest.raises(ValueError, match="argmin of an empty sequence"):
        plots.validation_curve_png([])
    assert renderer._process is not None and renderer._process.poll() is None  # still serving


def test_a_dead_renderer_is_replaced_by_drawing_here(renderer) -> None:
    args = figures()["validation_curve_png"]
    os.kill(renderer._process.pid, signal.SIGKILL)
    renderer._process.wait()
    assert plots.validation_curve_png(*args) == plots._validation_curve_png(*args)
    assert renderer._process is None


def test_the_renderer_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    plots.stop_renderer()
    monkeypatch.setenv("ABALONE_FIGURE_RENDERER", "0")
    plots.start_renderer()
    assert plots._renderer is None


def test_a_stopped_renderer_process_ends(renderer) -> None:
    process = renderer._process
    plots.stop_renderer()
    assert process.poll() == 0


def run(selection: list[str] | None) -> dg.DagsterRun:
    keys = None if selection is None else frozenset(dg.AssetKey(k) for k in selection)
    return dg.DagsterRun(job_name="abalone_pipeline", asset_selection=keys)


def test_only_runs_that_draw_start_it() -> None:
    assert draws_figures(run(None))
    assert draws_figures(run(["abalone_process", "trained_model"]))
    assert draws_figures(run(["evaluation_report"]))
    assert not draws_figures(run(["batch_predictions"]))
    assert not draws_figures(None)  # a sensor's resources
