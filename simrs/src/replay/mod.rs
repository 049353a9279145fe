//! Heuristic replays of whole traces: the textbook replay (`trace_replay`: a priority rule, a
//! placement rule, optional backfilling) and the RLScheduler-compatible one (`compat`).

pub mod compat;
mod trace_replay;

pub use trace_replay::*;
