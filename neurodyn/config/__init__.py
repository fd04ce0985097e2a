"""Run configurations: read, merge and validate a configuration (TOML files, flags, `--set`
strings), build the task, model and optimizer it names, and the seed streams of a run.

A layer below `neurodyn.analysis` and `neurodyn.runs`: both read run configurations, and the
run layer writes run folders with the analysis layer's exports, so the configuration code
lives beneath both (no import circles; `tests/test_layers.py` keeps it so).
"""

from ._config import TRAINING_DEFAULTS as TRAINING_DEFAULTS
from ._config import TRAINING_SCHEMA as TRAINING_SCHEMA
from ._config import ConfigError as ConfigError
from ._config import build as build
from ._config import build_task as build_task
from ._config import check_config as check_config
from ._config import differences as differences
from ._config import parse_assignment as parse_assignment
from ._config import read_toml as read_toml
from ._config import resolve_config as resolve_config
from ._config import set_path as set_path
from ._config import to_toml as to_toml
from ._config import user_settings as user_settings
from ._seeds import run_keys as run_keys
