"""The errors that cross a boundary: bad input a user gave, and refusals the command line
reports as a message (exit status 1) rather than a traceback.

Plain Python with no imports, so every layer (ml, storage, registry, records, defs) raises and
catches the same classes.
"""

# How an InputDataError names the two data parameters: the field, then SageMaker's name.
INPUT_PARAMETER = "input_data (InputData)"
BATCH_PARAMETER = "batch_data (BatchData)"


class PlatformError(RuntimeError):
    """A request that was refused; the message says why. Nothing was changed."""


class RegistryError(PlatformError):
    pass


class UnknownVersionError(RegistryError):
    pass


class TransitionError(RegistryError):
    pass


class ConcurrentChangeError(TransitionError):
    """The version changed between reading it and writing: nothing was written."""


class DamagedRegistryError(RegistryError):
    """The registry database exists but is not a complete MLflow database."""


class LineageError(PlatformError):
    pass


class ExecutionError(PlatformError):
    pass


class DefinitionError(PlatformError):
    pass


class InputDataError(ValueError):
    """Bad input data; the message names the parameter, the file and, where known, the line."""

    def __init__(self, parameter: str, location: str, problem: str, line: int | None = None):
        self.parameter = parameter
        self.location = location
        self.line = line
        self.problem = problem
        where = f"{location} line {line}" if line is not None else location
        super().__init__(f"{parameter}: {where}: {problem}")
