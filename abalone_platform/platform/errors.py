"""Refusals the command line reports as a message (exit status 1), not as a traceback."""


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
