from __future__ import annotations

import pytest

from abalone_platform_tests.platform.notebook import Notebook, shared_notebook


@pytest.fixture(scope="session")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> Notebook:
    """Three executions: v1 PendingManualApproval, v2 Approved, a run failing the gate."""
    return shared_notebook(tmp_path_factory)
