"""Training: `fit`, its result and history, checkpoints and resume."""

from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import list_checkpoints as list_checkpoints
from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import read_header as read_header
from ._checkpoint import save_checkpoint as save_checkpoint
from ._fit import FitError as FitError
from ._fit import FitResult as FitResult
from ._fit import build_history as build_history
from ._fit import fit as fit
