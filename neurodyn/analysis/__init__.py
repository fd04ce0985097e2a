"""Analysis: trained networks as labelled xarray datasets, PSTHs, trajectories, figures."""

from ._export import export_from_run as export_from_run
from ._export import export_run as export_run
from ._io import load as load
from ._io import save as save
from ._plots import plot_learning_curves as plot_learning_curves
