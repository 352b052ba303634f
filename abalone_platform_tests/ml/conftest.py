"""The UCI file read, processed and trained on once for all the ML unit tests."""

from pathlib import Path

import pytest

from abalone_platform.ml.data import AbaloneColumns, read_abalone_csv
from abalone_platform.ml.preprocess import ProcessedData, process
from abalone_platform.ml.train import TrainedModel, resolve_compute, train_model


@pytest.fixture(scope="session")
def rows(abalone_file: Path) -> AbaloneColumns:
    return read_abalone_csv(abalone_file, "input_data (InputData)", require_label=True)


@pytest.fixture(scope="session")
def processed(rows: AbaloneColumns) -> ProcessedData:
    return process(rows, seed=42)


@pytest.fixture(scope="session")
def trained(processed: ProcessedData) -> TrainedModel:
    return train_model(
        processed.train, processed.validation, seed=42, compute=resolve_compute("ml.m5.xlarge")
    )
