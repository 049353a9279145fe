"""simrs: a Rust discrete-event cluster simulator with a Gymnasium interface.

The native core lives in :mod:`simrs._simrs`; this package adds the Gymnasium wrappers.
"""

from simrs._simrs import (
    ConfigError,
    EpisodeOverError,
    InvalidActionError,
    InvariantError,
    PlaceEnv,
    SimrsError,
    VecPlaceEnv,
    __version__,
)
from simrs.env import ClusterPlaceEnv
from simrs.vector import PlaceVectorEnv

HEURISTICS = ("first_fit", "best_fit", "worst_fit")

__all__ = [
    "HEURISTICS",
    "ClusterPlaceEnv",
    "ConfigError",
    "EpisodeOverError",
    "InvalidActionError",
    "InvariantError",
    "PlaceEnv",
    "PlaceVectorEnv",
    "SimrsError",
    "VecPlaceEnv",
    "__version__",
]
