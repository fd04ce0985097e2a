"""Networks as Equinox modules: rate RNNs with biological constraints and the paper's maps."""

from ._base import AbstractRecurrentModel as AbstractRecurrentModel
from ._base import batch_noise as batch_noise
from ._base import batched_step as batched_step
from ._base import rollout_problem as rollout_problem
from ._base import simulate as simulate
