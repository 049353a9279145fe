//! A batch job: what it asks for, and (once it runs) where and when.

use crate::event::Time;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: usize,
    pub submit: Time,
    /// Actual run time (seconds).
    pub runtime: Time,
    /// The user's estimate; what backfilling plans with.
    pub requested_runtime: Time,
    pub cores: u32,
    pub mem_mb: u64,
    pub gpus: u32,
    pub user: i64,
    pub group: i64,
    pub executable: i64,
    /// Set once, when the job starts; `None` while it waits.
    pub start: Option<Time>,
    pub host: Option<usize>,
    pub end: Option<Time>,
}

impl Job {
    pub fn new(id: usize, submit: Time, runtime: Time, requested: Time, cores: u32, mem_mb: u64) -> Self {
        Self {
            id,
            submit,
            runtime,
            requested_runtime: requested.max(1),
            cores,
            mem_mb,
            gpus: 0,
            user: -1,
            group: -1,
            executable: -1,
            start: None,
            host: None,
            end: None,
        }
    }

    pub fn wait(&self) -> Option<Time> {
        self.start.map(|s| s - self.submit)
    }

    /// Bounded slowdown `max((wait + run) / max(run, 10), 1)` once started.
    pub fn bounded_slowdown(&self) -> Option<f64> {
        self.wait().map(|w| bounded_slowdown(w, self.runtime))
    }

    pub fn reset(&mut self) {
        self.start = None;
        self.host = None;
        self.end = None;
    }
}

pub const BSLD_THRESHOLD_S: f64 = 10.0;

pub fn bounded_slowdown(wait: Time, run: Time) -> f64 {
    ((wait as f64 + run as f64) / (run as f64).max(BSLD_THRESHOLD_S)).max(1.0)
}
