//! simrs: a discrete-event batch-cluster simulator for training RL schedulers.
//!
//! The core (events, cluster, workload, environments) is plain Rust with no Python in it; the
//! optional `python` feature adds the thin PyO3 binding layer in `python.rs`.

pub mod cluster;
pub mod error;
pub mod event;
pub mod place_env;
pub mod policy;
pub mod replay_compat;
pub mod swf;
pub mod vec_env;
pub mod workload;

#[cfg(feature = "python")]
mod python;

pub use error::{SimError, SimResult};
pub use place_env::{EpisodeMetrics, Heuristic, PlaceEnv};
pub use vec_env::VecPlaceEnv;
pub use workload::{Job, WorkloadConfig};
