"""Networks as Equinox modules: rate RNNs with biological constraints and the paper's maps."""

from ._activations import ACTIVATIONS as ACTIVATIONS
from ._activations import rectified_tanh as rectified_tanh
from ._base import AbstractRecurrentModel as AbstractRecurrentModel
from ._base import batch_noise as batch_noise
from ._base import batched_step as batched_step
from ._base import rollout_problem as rollout_problem
from ._base import simulate as simulate
from ._constraints import apply_dale as apply_dale
from ._constraints import balanced_dale_weights as balanced_dale_weights
from ._constraints import connectivity_mask as connectivity_mask
from ._constraints import dale_signs as dale_signs
from ._constraints import scale_to_spectral_radius as scale_to_spectral_radius
from ._constraints import spectral_radius as spectral_radius
from ._maps import MLP as MLP
from ._maps import LorenzMap as LorenzMap
from ._maps import OneShotNet as OneShotNet
from ._paper_nets import KalmanRNN as KalmanRNN
from ._paper_nets import KalmanRNNState as KalmanRNNState
from ._paper_nets import flip_flop_rnn as flip_flop_rnn
from ._paper_nets import motor_rnn as motor_rnn
from ._paper_nets import reservoir_rnn as reservoir_rnn
from ._rate_rnn import RateRNN as RateRNN
from ._rate_rnn import RateRNNWeights as RateRNNWeights
