"""abalone_platform: SageMaker Pipelines' abalone example as a local-first Dagster project.

`dagster job execute -m abalone_platform` finds the code location here as `code_location`, the
`@dg.definitions` function of abalone_platform/definitions.py (not `defs`: that is the
subpackage holding the areas). It is resolved lazily so that the
pure ML modules (`abalone_platform.ml`) stay importable without paying for Dagster and MLflow.
"""

from typing import Any

__all__ = ["code_location"]


def __getattr__(name: str) -> Any:
    if name == "code_location":
        from abalone_platform.definitions import defs

        return defs
    raise AttributeError(f"module 'abalone_platform' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "code_location"])
