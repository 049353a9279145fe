//! The `pick` decision mode (RLScheduler's): the agent chooses which queued job starts next
//! from a window of the first K jobs in arrival order; the job goes to the first host with room.
//! A chosen job that does not fit yet is committed: time advances (arrivals join the queue,
//! backfilling may start others) until it fits.
//!
//! Observation (f32, `K * 8`): one row per window slot, see `job_features`. Mask (i8, `K`):
//! 1 for each filled slot.

use crate::heuristics::backfill::{backfill, Backfill};
use crate::cluster::FitIndex;
use crate::envs::env::{load_episode, reward, Env, EnvConfig};
use crate::error::{SimError, SimResult};
use crate::job_features::{write_job_row, JobScales, EMPTY_SLOT, JOB_FEATURES};
use crate::metrics::EpisodeMetrics;
use crate::heuristics::placement::Placement;
use crate::sim::ClusterSim;

pub const DEFAULT_WINDOW: usize = 128;

#[derive(Debug, Clone)]
pub struct PickEnv {
    config: EnvConfig,
    window: usize,
    backfill: Backfill,
    sim: ClusterSim,
    scales: JobScales,
    fit: FitIndex,
    done: bool,
}

impl PickEnv {
    pub fn new(config: EnvConfig, window: usize, backfill: Backfill, seed: u64) -> SimResult<Self> {
        if window == 0 {
            return Err(SimError::InvalidConfig("window must be at least 1".into()));
        }
        if let crate::workload::WorkloadSource::Synthetic(c) = &config.source {
            c.validate()?;
        }
        let mut env = Self {
            config,
            window,
            backfill,
            sim: ClusterSim::default(),
            scales: JobScales::default(),
            fit: FitIndex::default(),
            done: true,
        };
        env.reset(seed);
        Ok(env)
    }

    /// Advances time until a job is queued (or the episode ends); returns job-seconds waited.
    fn advance_to_decision(&mut self) -> f64 {
        let mut waited = 0.0;
        while self.sim.queue.is_empty() && !self.sim.all_started() {
            match self.sim.advance() {
                Some(w) => waited += w,
                None => break,
            }
        }
        if self.sim.all_started() {
            self.done = true;
            self.sim.drain();
        }
        FitIndex::build(&self.sim.cluster, &mut self.fit);
        waited
    }

    /// A named heuristic's choice of window slot (for baselines and tests).
    pub fn heuristic_action(&self, priority: crate::heuristics::policy::Priority) -> Option<usize> {
        if self.done {
            return None;
        }
        let visible = &self.sim.queue[..self.sim.queue.len().min(self.window)];
        (0..visible.len()).min_by(|&a, &b| {
            let key = |i: usize| priority.job_key(&self.sim, visible[i]);
            key(a).order(&key(b)).then(a.cmp(&b))
        })
    }
}

impl Env for PickEnv {
    fn obs_dim(&self) -> usize {
        self.window * JOB_FEATURES
    }

    fn action_dim(&self) -> usize {
        self.window
    }

    fn reset(&mut self, seed: u64) {
        load_episode(&mut self.sim, &self.config.source, seed);
        let max_cores = self.sim.cluster.hosts.iter().map(|h| h.cores).max().unwrap_or(1);
        self.scales = JobScales::new(&self.sim.jobs, max_cores);
        self.done = false;
        self.advance_to_decision();
    }

    fn step(&mut self, slot: usize) -> SimResult<f64> {
        if self.done {
            return Err(SimError::EpisodeOver);
        }
        if slot >= self.sim.queue.len().min(self.window) {
            return Err(SimError::InvalidAction { action: slot, reason: "empty window slot" });
        }
        let before = self.sim.start_order.len();
        let job = self.sim.queue[slot];
        let mut waited = 0.0;
        loop {
            if let Some(host) = Placement::FirstFit.choose(&self.sim.cluster, &self.sim.jobs[job], self.sim.now) {
                let pos = self.sim.queue.iter().position(|&q| q == job).expect("committed job is queued");
                self.sim.start_from_queue(pos, host)?;
                break;
            }
            backfill(&mut self.sim, job, self.backfill, Placement::FirstFit);
            match self.sim.advance() {
                Some(w) => waited += w,
                None => return Err(SimError::CapacityViolation { host: usize::MAX }),
            }
        }
        waited += self.advance_to_decision();
        Ok(reward(self.config.reward, &self.sim, waited, before, self.done))
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn observe(&self, out: &mut [f32]) {
        let visible = if self.done { 0 } else { self.sim.queue.len().min(self.window) };
        for (i, row) in out.chunks_exact_mut(JOB_FEATURES).enumerate() {
            if i < visible {
                let job = &self.sim.jobs[self.sim.queue[i]];
                let can = self.fit.fits_somewhere(&self.sim.cluster, job);
                write_job_row(row, job, self.sim.now, &self.scales, can);
            } else {
                row.copy_from_slice(&EMPTY_SLOT);
            }
        }
    }

    fn action_mask(&self, out: &mut [i8]) {
        let visible = if self.done { 0 } else { self.sim.queue.len().min(self.window) };
        for (i, m) in out.iter_mut().enumerate() {
            *m = (i < visible) as i8;
        }
    }

    fn metrics(&self) -> EpisodeMetrics {
        self.sim.metrics()
    }

    fn sim(&self) -> Option<&ClusterSim> {
        Some(&self.sim)
    }
}
