"""The code location: every module under defs/ (one folder per area), loaded by Dagster's
defs-folder convention ([tool.dg] in pyproject.toml), plus the one executor for every job.

The folder holds plain Python modules only, so they are loaded here by the rules Dagster's
``load_from_defs_folder`` applies to such modules (``load_defs_folder``), without its component
machinery: that also imports every component library installed (dagster-aws' package, boto3
with it: about a second) and snapshots each component type into the repository's metadata, on
every load (a `dagster job execute` loads the location five times). A defs folder that holds
anything else (a defs.yaml / component.yaml component, a definitions.py or component.py keyword
file, a Python component loader) is loaded by ``load_from_defs_folder`` itself.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import dagster as dg

from abalone_platform import gc_policy

# Fewer garbage collections over the long-lived heap in every process that loads the code
# location (a CLI run, a code server), and a short exit (see gc_policy).
gc_policy.install()

DEFS_PACKAGE = "abalone_platform.defs"
# What only Dagster's component loader understands (dagster.components.core.decl).
_COMPONENT_FILES = frozenset(
    {"defs.yaml", "defs.yml", "component.yaml", "definitions.py", "component.py"}
)


def _module_names(directory: Path, package: str) -> list[str] | None:
    """The modules under ``directory`` in the order Dagster loads them (sorted paths, depth
    first; ``__pycache__`` and hidden entries skipped), or None when a component file is there."""
    names: list[str] = []
    for path in sorted(directory.iterdir()):
        if path.name == "__pycache__" or path.name.startswith("."):
            continue
        if path.name in _COMPONENT_FILES:
            return None
        if path.is_dir():
            inner = _module_names(path, f"{package}.{path.name}")
            if inner is None:
                return None
            names += inner
        elif path.suffix == ".py":
            names.append(package if path.name == "__init__.py" else f"{package}.{path.stem}")
    return names


def _objects_of_type(module: ModuleType, kind: type) -> Iterator[object]:
    # dagster's find_objects_in_module_of_types: attributes of the type, and lists of them.
    for attr in dir(module):
        value = getattr(module, attr)
        if isinstance(value, kind):
            yield value
        elif isinstance(value, list) and all(isinstance(el, kind) for el in value):
            yield from value


def _module_defs(module: ModuleType) -> dg.Definitions | None:
    """A plain module's Definitions as Dagster's PythonFileComponent builds them; None when the
    module holds a component loader or a @definitions function that takes the load context (only
    the component loader handles those)."""
    from dagster.components.component.component_loader import is_component_loader
    from dagster.components.definitions import LazyDefinitions

    if any(is_component_loader(value) for value in vars(module).values()):
        return None
    definitions = list(_objects_of_type(module, dg.Definitions))
    lazy = list(_objects_of_type(module, LazyDefinitions))
    if any(load.has_context_arg for load in lazy):
        return None
    if definitions and lazy:
        raise dg.DagsterInvalidDefinitionError(
            f"Found both @definitions-decorated functions and Definitions objects in "
            f"{module.__file__}. At most one may be specified per module."
        )
    if len(definitions) > 1:
        raise dg.DagsterInvalidDefinitionError(
            f"Found multiple Definitions objects in {module.__file__}. At most one Definitions "
            "object may be specified per module."
        )
    if definitions:
        return definitions[0]
    if lazy:
        return dg.Definitions.merge(*[load() for load in lazy])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        return dg.load_definitions_from_module(module)


def load_defs_folder() -> dg.Definitions:
    """Every module under abalone_platform/defs, as ``dg.load_from_defs_folder`` would load it
    (less the component tree and the installed component types' metadata)."""
    package = importlib.import_module(DEFS_PACKAGE)
    names = _module_names(Path(package.__file__).parent, DEFS_PACKAGE)
    parts = []
    for name in names or ():
        built = _module_defs(importlib.import_module(name))
        if built is None:
            names = None
            break
        parts.append(built)
    if names is None:
        return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    return dg.Definitions.merge(*parts)


def build_defs() -> dg.Definitions:
    """The Definitions; ABALONE_HOME, ABALONE_ARTIFACT_ROOT, MLFLOW_TRACKING_URI and the sensor
    settings are read at the time of the call (ABALONE_INPUT_DATA / ABALONE_BATCH_DATA when a
    run starts)."""
    built = dg.Definitions.merge(
        load_defs_folder(),
        # In-process, for the job and for the UI's Materialize button (the implicit asset job)
        # alike: one process per step costs about 5 s each here, several times the work itself.
        dg.Definitions(executor=dg.in_process_executor),
    )
    gc_policy.after_first_load()
    return built


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()
