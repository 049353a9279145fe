//! simrs: a discrete-event batch-cluster simulator for training RL schedulers.
//!
//! The core is plain Rust with no Python in it, grouped by concept: the simulation itself
//! (events, cluster, jobs, workloads and traces, metrics, rewards, errors), the decision modes
//! as environments (`envs`), the hand-written rules (`heuristics`), whole-trace replays
//! (`replay`) and the place policy's fused layers (`nn`). The optional `python` feature adds
//! the thin PyO3 binding layer in `python/`.

pub mod cluster;
pub mod envs;
pub mod error;
pub mod event;
pub mod heuristics;
pub mod job;
pub mod job_features;
pub mod metrics;
pub mod nn;
pub mod replay;
pub mod reward;
pub mod sim;
pub mod swf;
pub mod workload;

#[cfg(feature = "python")]
mod python;

pub use envs::env::{Env, EnvConfig};
pub use envs::place_env::PlaceEnv;
pub use envs::spec::{AnyEnv, EnvSpec, Mode, OptionValue};
pub use envs::vec_env::VecEnv;
pub use error::{SimError, SimResult};
pub use metrics::EpisodeMetrics;
pub use workload::{WorkloadConfig, WorkloadSource};
