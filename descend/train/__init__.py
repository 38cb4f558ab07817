"""Training: the loop, callbacks, telemetry, checkpoints and run directories."""

from descend.train.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ProgressBar,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from descend.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from descend.train.lock import LockError
from descend.train.metrics import MetricsWriter, read_metrics
from descend.train.trainer import History, Trainer

__all__ = [
    "Callback",
    "CheckpointError",
    "EarlyStopping",
    "History",
    "LockError",
    "MetricsWriter",
    "ModelCheckpoint",
    "ProgressBar",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "Trainer",
    "load_checkpoint",
    "read_metrics",
    "save_checkpoint",
]
