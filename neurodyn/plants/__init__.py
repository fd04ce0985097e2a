"""Physical plants driven by a network: the torque-driven and the six-muscle Li–Todorov arm."""

from ._arm import TwoJointArm as TwoJointArm
from ._base import AbstractPlant as AbstractPlant
from ._muscles import ACTIVATION_MAPS as ACTIVATION_MAPS
from ._muscles import MUSCLE_NAMES as MUSCLE_NAMES
from ._muscles import MuscleArm as MuscleArm
from ._muscles import MuscleTension as MuscleTension
from ._muscles import excitation_from_output as excitation_from_output
