"""Error types that carry a message meant for the user.

Training turns any ``UserError`` into one line in ``/opt/ml/output/failure``;
anything else is a bug in this image and is reported with its traceback.
"""


class UserError(Exception):
    """A problem with the job's configuration or data that the user can fix."""


class ConfigError(UserError):
    """Bad hyperparameters, channels or config files."""


class DataError(UserError):
    """Data that cannot be read: says which file, record or line, and byte offset."""


class TrainingStopped(UserError):
    """SIGTERM (StopTrainingJob, spot interruption) arrived during training."""
