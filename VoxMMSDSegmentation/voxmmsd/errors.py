"""Errors the engine raises for problems a user can fix.

Every message names the file or setting at fault and says what to do. The command
line prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class VoxMMSDError(Exception):
    """Base class: a problem with the user's input, model or environment."""


class InputError(VoxMMSDError):
    """An image, case or data set cannot be used as given."""


class LabelError(InputError):
    """A label map holds values outside its declared convention."""


class ModelError(VoxMMSDError):
    """A model file or package is missing, corrupt, tampered with or incompatible."""


class ConfigError(VoxMMSDError):
    """A configuration value or file is invalid."""
