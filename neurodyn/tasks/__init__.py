"""Task environments: trial samplers, losses, metrics, default networks, hyperparameters."""

from ._base import SIZES as SIZES
from ._base import AbstractTask as AbstractTask
from ._base import Batch as Batch
from ._base import available as available
from ._base import get as get
from ._base import register as register
