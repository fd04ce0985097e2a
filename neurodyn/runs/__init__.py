"""Runs: resolve and validate a configuration, build the task, model and optimizer, train
into a run folder, and keep a user's folders safe. The `neurodyn` command is a thin parser
over this layer."""

from ._compare import run_compare as run_compare
from ._compare import time_to_target as time_to_target
from ._config import TRAINING_DEFAULTS as TRAINING_DEFAULTS
from ._config import TRAINING_SCHEMA as TRAINING_SCHEMA
from ._config import ConfigError as ConfigError
from ._config import build as build
from ._config import build_task as build_task
from ._config import check_config as check_config
from ._config import differences as differences
from ._config import read_toml as read_toml
from ._config import resolve_config as resolve_config
from ._config import to_toml as to_toml
from ._config import user_settings as user_settings
from ._folder import RunFolderError as RunFolderError
from ._folder import check_out as check_out
from ._folder import is_run_folder as is_run_folder
from ._folder import prepare_out as prepare_out
from ._run import run_fit as run_fit
from ._seeds import run_keys as run_keys
