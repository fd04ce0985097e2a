"""Task environments: trial samplers, losses, metrics, default networks, hyperparameters."""

from ._base import OPTIMIZER_NAMES as OPTIMIZER_NAMES
from ._base import SIZES as SIZES
from ._base import AbstractTask as AbstractTask
from ._base import Batch as Batch
from ._base import available as available
from ._base import get as get
from ._base import register as register
from ._closed_loop import CONTROL_MAPS as CONTROL_MAPS
from ._closed_loop import FEEDBACK_CHANNELS as FEEDBACK_CHANNELS
from ._closed_loop import ClosedLoop as ClosedLoop
from ._closed_loop import ClosedLoopState as ClosedLoopState
from ._digits import DigitsTask as DigitsTask
from ._digits import load_mnist as load_mnist
from ._double_reach import DoubleReachTask as DoubleReachTask
from ._flipflop import FlipFlopTask as FlipFlopTask
from ._flipflop import sample_flipflop_trials as sample_flipflop_trials
from ._kalman import KalmanTask as KalmanTask
from ._kalman import sample_kalman_trials as sample_kalman_trials
from ._lorenz import LorenzTask as LorenzTask
from ._lorenz import lorenz_trajectory as lorenz_trajectory
from ._oneshot import OneShotTask as OneShotTask
from ._oneshot import sample_oneshot_trials as sample_oneshot_trials
from ._reach import PLANTS as PLANTS
from ._reach import TARGET_DISTRIBUTIONS as TARGET_DISTRIBUTIONS
from ._reach import ReachTask as ReachTask
from ._reach import reach_metrics as reach_metrics
