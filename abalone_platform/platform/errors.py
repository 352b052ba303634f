"""Refusals the command line reports as a message (exit status 1), not as a traceback."""


class PlatformError(RuntimeError):
    """A request that was refused; the message says why. Nothing was changed."""


class RegistryError(PlatformError):
    pass


class UnknownVersionError(RegistryError):
    pass


class TransitionError(RegistryError):
    pass


class LineageError(PlatformError):
    pass


class ExecutionError(PlatformError):
    pass


class DefinitionError(PlatformError):
    pass
