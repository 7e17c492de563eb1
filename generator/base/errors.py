"""Exceptions that the CLI turns into one-line messages (no traceback)."""


class BnnkwsError(Exception):
    """Base class: the message names the file, field or frame at fault and what was expected."""


class AudioError(BnnkwsError):
    """An audio file is missing, unreadable, or not 16 kHz mono PCM."""


class DatasetError(BnnkwsError):
    """A dataset folder does not have the expected Speech Commands layout."""


class FormatError(BnnkwsError):
    """A binary file (checkpoint, integer model, front-end parameters) is corrupt or foreign."""


class BuildError(BnnkwsError):
    """A SCons build or a toolchain step failed."""


class DeviceError(BnnkwsError):
    """The serial link or the (emulated) board misbehaved."""
