"""Training: `fit`, its result and history, checkpoints and resume."""

from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import atomic_write_bytes as atomic_write_bytes
from ._checkpoint import is_temp_file as is_temp_file
from ._checkpoint import list_checkpoints as list_checkpoints
from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import read_header as read_header
from ._checkpoint import remove_stale_temp_files as remove_stale_temp_files
from ._checkpoint import save_checkpoint as save_checkpoint
from ._checkpoint import software_versions as software_versions
from ._fit import AUTO_LOSS_INCREASE as AUTO_LOSS_INCREASE
from ._fit import FitError as FitError
from ._fit import FitResult as FitResult
from ._fit import build_history as build_history
from ._fit import final_metrics as final_metrics
from ._fit import fit as fit
