"""Error types that carry a message meant for the user.

Training turns any ``UserError`` into one line in ``/opt/ml/output/failure``;
anything else is a bug in this image and is reported with its traceback.
"""

import re


class UserError(Exception):
    """A problem with the job's configuration or data that the user can fix."""


class ConfigError(UserError):
    """Bad hyperparameters, channels or config files."""


class DataError(UserError):
    """Data that cannot be read: says which file, record or line, and byte offset."""


class TrainingStopped(UserError):
    """SIGTERM (StopTrainingJob, spot interruption) arrived during training."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value) -> str:
    """A value from outside (a hyperparameter, a file or channel name) as it may appear inside a log or failure
    line: control characters escaped, so it cannot start a line of its own (a forged metric line) or drive a
    terminal."""
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m.group(), f"\\x{ord(m.group()):02x}"), str(value))
