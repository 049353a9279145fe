"""simrs: a Rust discrete-event cluster simulator with Gymnasium interfaces.

The native core lives in :mod:`simrs._simrs`; this package adds the Gymnasium wrappers.
"""

from simrs._simrs import (
    ConfigError,
    EntityLayers,
    Env,
    EpisodeOverError,
    InvalidActionError,
    InvariantError,
    PickBatch,
    PlaceHostLayers,
    PlaceNet,
    SimrsError,
    Trace,
    TraceError,
    VecEnv,
    __version__,
    load_trace,
    pick_sample,
    replay_compat,
    replay_trace,
)
from simrs.env import ClusterEnv, ClusterHierarchicalEnv, ClusterPickEnv, ClusterPlaceEnv
from simrs.vector import BatchEnv, ClusterVectorEnv, FinishedEpisode

MODES = ("place", "pick", "hierarchical")
PLACEMENTS = ("first_fit", "best_fit", "best_fit_mem", "worst_fit", "random", "tetris")
PRIORITIES = ("fcfs", "sjf", "smallest", "f1", "wfp3", "unicep")
# Job rules that read each job's actual run time, which no scheduler knows: bounds to compare
# against, never baselines a policy imitates or is judged by.
CLAIRVOYANT_PRIORITIES = ("clairvoyant",)
BACKFILLS = ("none", "shadow", "easy")
REWARDS = ("wait", "bsld_dense", "bsld_terminal", "utilization", "load_balance")

# RLScheduler's evaluation protocol on lublin_256 (0-based starts into the filtered jobs).
RLSCHEDULER_WINDOWS = (1981, 2756, 4299, 8850, 3316, 2714, 5228, 7762, 4022, 7085)
RLSCHEDULER_WINDOW_LEN = 1024

__all__ = [
    "BACKFILLS",
    "CLAIRVOYANT_PRIORITIES",
    "MODES",
    "PLACEMENTS",
    "PRIORITIES",
    "REWARDS",
    "RLSCHEDULER_WINDOWS",
    "RLSCHEDULER_WINDOW_LEN",
    "BatchEnv",
    "ClusterEnv",
    "ClusterHierarchicalEnv",
    "ClusterPickEnv",
    "ClusterPlaceEnv",
    "ClusterVectorEnv",
    "ConfigError",
    "Env",
    "EpisodeOverError",
    "FinishedEpisode",
    "InvalidActionError",
    "InvariantError",
    "EntityLayers",
    "PickBatch",
    "PlaceHostLayers",
    "PlaceNet",
    "SimrsError",
    "Trace",
    "TraceError",
    "VecEnv",
    "__version__",
    "load_trace",
    "pick_sample",
    "replay_compat",
    "replay_trace",
]
