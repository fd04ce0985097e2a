"""Analysis: trained networks as labelled xarray datasets, PSTHs, trajectories, figures."""

from ._convert import to_dpca as to_dpca
from ._convert import to_jpca as to_jpca
from ._convert import to_numpy as to_numpy
from ._export import export_from_run as export_from_run
from ._export import export_run as export_run
from ._io import load as load
from ._io import save as save
from ._plots import plot_learning_curves as plot_learning_curves
from ._plots import plot_psth_grid as plot_psth_grid
from ._plots import save_figure as save_figure
from ._plots_arm import plot_hand_trajectories as plot_hand_trajectories
from ._plots_arm import plot_motor_output as plot_motor_output
from ._plots_tasks import kalman_error_profile as kalman_error_profile
from ._plots_tasks import plot_digits as plot_digits
from ._plots_tasks import plot_flipflop as plot_flipflop
from ._plots_tasks import plot_kalman_error as plot_kalman_error
from ._plots_tasks import plot_kalman_traces as plot_kalman_traces
from ._plots_tasks import plot_lorenz_attractor as plot_lorenz_attractor
from ._plots_tasks import plot_oneshot as plot_oneshot
from ._psth import align_trials as align_trials
from ._psth import psth as psth
from ._simulate import TaskAdapter as TaskAdapter
from ._simulate import register_adapter as register_adapter
from ._simulate import simulate as simulate
from ._trajectories import trajectories as trajectories
