//! simrs: a discrete-event batch-cluster simulator for training RL schedulers.
//!
//! The core (events, cluster, workloads, decision modes, heuristics) is plain Rust with no
//! Python in it; the optional `python` feature adds the thin PyO3 binding layer in `python.rs`.

pub mod backfill;
pub mod cluster;
pub mod compat_pick_env;
pub mod env;
pub mod error;
pub mod event;
pub mod hier_env;
pub mod job;
pub mod job_features;
pub mod metrics;
pub mod pick_env;
pub mod place_env;
pub mod place_net;
pub mod place_train;
pub mod placement;
pub mod policy;
pub mod replay;
pub mod replay_compat;
pub mod reward;
pub mod sim;
pub mod swf;
pub mod vec_env;
pub mod versus;
pub mod workload;

#[cfg(feature = "python")]
mod python;

pub use env::{Env, EnvConfig};
pub use error::{SimError, SimResult};
pub use metrics::EpisodeMetrics;
pub use place_env::PlaceEnv;
pub use vec_env::VecEnv;
pub use workload::{WorkloadConfig, WorkloadSource};
