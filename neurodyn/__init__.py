"""neurodyn: biologically constrained rate RNNs, tasks and the SOFO optimizer in JAX.

The public namespaces are `neurodyn.models`, `neurodyn.plants`, `neurodyn.tasks`,
`neurodyn.optim`, `neurodyn.training`, `neurodyn.analysis`, `neurodyn.runs`, and the
functions re-exported here.
"""

from . import analysis as analysis
from . import models as models
from . import optim as optim
from . import plants as plants
from . import runs as runs
from . import tasks as tasks
from . import training as training
from ._version import __version__  # noqa: F401  (the package version)
from .optim import sample_tangents as sample_tangents
from .optim import value_and_sofo_grad as value_and_sofo_grad
from .optim import value_and_sofo_grad_scan as value_and_sofo_grad_scan
from .training import fit as fit
