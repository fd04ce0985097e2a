"""Runs: train a resolved configuration into a run folder, compare optimizers, and keep a
user's folders safe. The `neurodyn` command is a thin parser over this layer. The
configuration itself (`resolve_config`, `build`, `run_keys`, ...) lives one layer down, in
`neurodyn.config`."""

from ._compare import run_compare as run_compare
from ._compare import time_to_target as time_to_target
from ._folder import RunFolderError as RunFolderError
from ._folder import check_out as check_out
from ._folder import is_run_folder as is_run_folder
from ._folder import prepare_out as prepare_out
from ._folder import resume_config as resume_config
from ._run import run_fit as run_fit
