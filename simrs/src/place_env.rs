//! The `place` decision mode: the agent chooses which host runs the job at the head of the
//! queue. Time advances only between decisions, so every step is a real choice.
//!
//! Observation (f32, length `num_hosts * 4 + 2`): for each host its core utilisation, memory
//! utilisation, cores / largest host's cores and memory / largest host's memory; then the job's
//! cores and memory, normalised by the largest host's. Mask (i8, length `num_hosts`): 1 where the
//! head job fits. Reward: minus the job-hours spent waiting in the queue since the previous
//! decision, so an episode's return is minus the total waiting time in hours.

use std::collections::VecDeque;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cluster::Cluster;
use crate::error::{SimError, SimResult};
use crate::event::{EventKind, EventQueue, Time};
use crate::workload::{Job, WorkloadConfig};

pub const HOST_FEATURES: usize = 4;
pub const JOB_FEATURES: usize = 2;
const SECONDS_PER_HOUR: f64 = 3600.0;
/// Slowdown denominators below this many seconds are raised to it (bounded slowdown).
const BSLD_THRESHOLD_S: f64 = 10.0;

/// End-of-episode figures, also used to compare a policy with the heuristics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpisodeMetrics {
    pub jobs: usize,
    pub mean_wait_s: f64,
    pub mean_bounded_slowdown: f64,
    pub makespan_s: f64,
    pub utilization: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heuristic {
    /// The lowest-numbered host that fits.
    FirstFit,
    /// The fitting host left with the fewest free cores (then least free memory).
    BestFit,
    /// The fitting host left with the most free cores: spreads load.
    WorstFit,
}

impl Heuristic {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "first_fit" => Some(Self::FirstFit),
            "best_fit" => Some(Self::BestFit),
            "worst_fit" => Some(Self::WorstFit),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlaceEnv {
    config: WorkloadConfig,
    rng: ChaCha8Rng,
    cluster: Cluster,
    jobs: Vec<Job>,
    queue: VecDeque<usize>,
    events: EventQueue,
    now: Time,
    placed: usize,
    done: bool,
    max_cores: f32,
    max_mem: f32,
}

impl PlaceEnv {
    pub fn new(config: WorkloadConfig, seed: u64) -> SimResult<Self> {
        config.validate()?;
        let mut env = Self {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            cluster: Cluster::default(),
            jobs: Vec::new(),
            queue: VecDeque::new(),
            events: EventQueue::new(),
            now: 0,
            placed: 0,
            done: true,
            max_cores: 1.0,
            max_mem: 1.0,
        };
        env.reset(seed);
        Ok(env)
    }

    pub fn num_hosts(&self) -> usize {
        self.config.num_hosts
    }

    pub fn obs_dim(&self) -> usize {
        self.config.num_hosts * HOST_FEATURES + JOB_FEATURES
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Starts a new episode: a fresh cluster and workload drawn from `seed`.
    pub fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.cluster = Cluster::new(self.config.hosts(&mut self.rng));
        self.jobs = self.config.jobs(&mut self.rng);
        self.max_cores = self.cluster.max_cores() as f32;
        self.max_mem = self.cluster.max_mem_mb() as f32;
        self.queue.clear();
        self.events.clear();
        for job in &self.jobs {
            self.events.push(job.submit, EventKind::Arrival { job: job.id });
        }
        self.now = 0;
        self.placed = 0;
        self.done = false;
        self.advance_to_decision();
    }

    fn head_job(&self) -> Option<&Job> {
        self.queue.front().map(|&j| &self.jobs[j])
    }

    fn head_fits_somewhere(&self) -> bool {
        self.head_job()
            .map(|j| self.cluster.hosts.iter().any(|h| h.fits(j.cores, j.mem_mb)))
            .unwrap_or(false)
    }

    /// Processes events until the head job fits on some host or the episode ends.
    /// Returns the job-seconds spent waiting meanwhile.
    fn advance_to_decision(&mut self) -> f64 {
        let mut waited = 0.0;
        while !self.head_fits_somewhere() {
            let Some(t) = self.events.peek_time() else {
                // Nothing left to happen and nothing placeable: the episode is over.
                self.done = true;
                break;
            };
            waited += self.queue.len() as f64 * (t - self.now) as f64;
            self.now = t;
            // Apply every event at this instant before deciding, so a completion and an
            // arrival at the same second are both visible to the agent.
            while self.events.peek_time() == Some(t) {
                let event = self.events.pop().expect("peeked");
                match event.kind {
                    EventKind::Arrival { job } => self.queue.push_back(job),
                    EventKind::Completion { job, host } => {
                        let j = &mut self.jobs[job];
                        debug_assert!(j.end.is_none(), "job {job} ended twice");
                        j.end = Some(t);
                        let (cores, mem) = (j.cores, j.mem_mb);
                        self.cluster.release(host, cores, mem);
                    }
                }
            }
        }
        if self.placed == self.jobs.len() {
            self.done = true;
        }
        debug_assert!(self.cluster.within_capacity());
        waited
    }

    /// Places the head job on `host`; returns the reward (minus waiting job-hours).
    pub fn step(&mut self, host: usize) -> SimResult<f64> {
        if self.done {
            return Err(SimError::EpisodeOver);
        }
        let job_id = *self.queue.front().expect("a decision always has a head job");
        let (cores, mem) = (self.jobs[job_id].cores, self.jobs[job_id].mem_mb);
        match self.cluster.hosts.get(host) {
            None => return Err(SimError::InvalidAction { action: host, reason: "no such host" }),
            Some(h) if !h.fits(cores, mem) => {
                return Err(SimError::InvalidAction {
                    action: host,
                    reason: "the job does not fit on that host (check the action mask)",
                })
            }
            Some(_) => {}
        }
        self.cluster.allocate(host, cores, mem)?;
        self.queue.pop_front();
        let job = &mut self.jobs[job_id];
        debug_assert!(job.start.is_none(), "job {job_id} started twice");
        job.start = Some(self.now);
        job.host = Some(host);
        let end = self.now + job.runtime;
        self.events.push(end, EventKind::Completion { job: job_id, host });
        self.placed += 1;
        let waited = self.advance_to_decision();
        if self.done {
            self.drain();
        }
        Ok(-waited / SECONDS_PER_HOUR)
    }

    /// After the last placement, lets every running job finish so makespan is known.
    fn drain(&mut self) {
        while let Some(event) = self.events.pop() {
            self.now = event.time;
            if let EventKind::Completion { job, host } = event.kind {
                let j = &mut self.jobs[job];
                j.end = Some(event.time);
                let (cores, mem) = (j.cores, j.mem_mb);
                self.cluster.release(host, cores, mem);
            }
        }
        debug_assert!(self.jobs.iter().all(|j| j.end.is_some()), "every job ends");
    }

    pub fn observe(&self, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.obs_dim());
        for (i, h) in self.cluster.hosts.iter().enumerate() {
            let row = &mut out[i * HOST_FEATURES..(i + 1) * HOST_FEATURES];
            row[0] = h.used_cores as f32 / h.cores as f32;
            row[1] = h.used_mem_mb as f32 / h.mem_mb as f32;
            row[2] = h.cores as f32 / self.max_cores;
            row[3] = h.mem_mb as f32 / self.max_mem;
        }
        let tail = &mut out[self.config.num_hosts * HOST_FEATURES..];
        match self.head_job() {
            Some(j) if !self.done => {
                tail[0] = j.cores as f32 / self.max_cores;
                tail[1] = j.mem_mb as f32 / self.max_mem;
            }
            _ => tail.fill(0.0),
        }
    }

    pub fn action_mask(&self, out: &mut [i8]) {
        debug_assert_eq!(out.len(), self.num_hosts());
        match self.head_job() {
            Some(j) if !self.done => {
                for (m, h) in out.iter_mut().zip(&self.cluster.hosts) {
                    *m = h.fits(j.cores, j.mem_mb) as i8;
                }
            }
            _ => out.fill(0),
        }
    }

    pub fn heuristic_action(&self, rule: Heuristic) -> Option<usize> {
        let job = self.head_job()?;
        let fitting = self
            .cluster
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.fits(job.cores, job.mem_mb));
        match rule {
            Heuristic::FirstFit => fitting.map(|(i, _)| i).next(),
            Heuristic::BestFit => fitting
                .min_by_key(|(i, h)| (h.free_cores() - job.cores, h.free_mem_mb() - job.mem_mb, *i))
                .map(|(i, _)| i),
            Heuristic::WorstFit => fitting
                .max_by_key(|(i, h)| (h.free_cores(), h.free_mem_mb(), std::cmp::Reverse(*i)))
                .map(|(i, _)| i),
        }
    }

    pub fn metrics(&self) -> EpisodeMetrics {
        let started: Vec<&Job> = self.jobs.iter().filter(|j| j.start.is_some()).collect();
        let n = started.len().max(1) as f64;
        let mean_wait = started.iter().map(|j| j.wait().unwrap() as f64).sum::<f64>() / n;
        let bsld = started
            .iter()
            .map(|j| {
                let wait = j.wait().unwrap() as f64;
                let run = j.runtime as f64;
                ((wait + run) / run.max(BSLD_THRESHOLD_S)).max(1.0)
            })
            .sum::<f64>()
            / n;
        let first_submit = self.jobs.first().map(|j| j.submit).unwrap_or(0);
        let last_end = self.jobs.iter().filter_map(|j| j.end).max().unwrap_or(first_submit);
        let makespan = (last_end - first_submit) as f64;
        let core_seconds: f64 =
            started.iter().map(|j| j.cores as f64 * j.runtime as f64).sum();
        let capacity: f64 =
            self.cluster.hosts.iter().map(|h| h.cores as f64).sum::<f64>() * makespan.max(1.0);
        EpisodeMetrics {
            jobs: started.len(),
            mean_wait_s: mean_wait,
            mean_bounded_slowdown: bsld,
            makespan_s: makespan,
            utilization: core_seconds / capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> WorkloadConfig {
        WorkloadConfig { num_hosts: 3, episode_length: 40, max_jobs_per_step: 8, ..Default::default() }
    }

    fn run(rule: Heuristic, seed: u64) -> (f64, PlaceEnv) {
        let mut env = PlaceEnv::new(small(), seed).unwrap();
        let mut ret = 0.0;
        while !env.is_done() {
            let a = env.heuristic_action(rule).unwrap();
            ret += env.step(a).unwrap();
        }
        (ret, env)
    }

    #[test]
    fn every_job_runs_once_and_ends() {
        let (ret, env) = run(Heuristic::FirstFit, 7);
        assert!(env.jobs().iter().all(|j| j.start.is_some() && j.end.is_some()));
        assert!(env.jobs().iter().all(|j| j.end.unwrap() == j.start.unwrap() + j.runtime));
        assert!(env.jobs().iter().all(|j| j.start.unwrap() >= j.submit));
        let m = env.metrics();
        assert_eq!(m.jobs, 40);
        // The return is exactly minus the total wait in hours.
        let total_wait: f64 = env.jobs().iter().map(|j| j.wait().unwrap() as f64).sum();
        assert!((ret + total_wait / 3600.0).abs() < 1e-9, "{ret} vs {total_wait}");
        assert!(m.utilization > 0.0 && m.utilization <= 1.0);
        assert!(env.cluster().hosts.iter().all(|h| h.used_cores == 0));
    }

    #[test]
    fn invalid_actions_are_errors_not_panics() {
        let mut env = PlaceEnv::new(small(), 1).unwrap();
        assert!(matches!(env.step(99), Err(SimError::InvalidAction { .. })));
        let (_, mut finished) = run(Heuristic::BestFit, 1);
        assert_eq!(finished.step(0), Err(SimError::EpisodeOver));
    }

    #[test]
    fn mask_matches_fit() {
        let env = PlaceEnv::new(small(), 3).unwrap();
        let mut mask = vec![0i8; 3];
        env.action_mask(&mut mask);
        assert!(mask.contains(&1));
        let mut obs = vec![0f32; env.obs_dim()];
        env.observe(&mut obs);
        assert!(obs.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)));
    }
}
