//! The `place` decision mode: the agent chooses which host runs the job at the head of the
//! queue. Time advances only between decisions, so every step is a real choice.
//!
//! Observation (f32, length `num_hosts * 4 + 2`): for each host its core utilisation, memory
//! utilisation, cores / largest host's cores and memory / largest host's memory (ratios
//! precomputed per host); then the job's cores / the episode's largest job cores and memory /
//! largest job memory. Mask (i8, length `num_hosts`): 1 where the head job fits.

use crate::envs::env::{load_episode, reward, Env, EnvConfig};
use crate::error::{SimError, SimResult};
use crate::metrics::EpisodeMetrics;
use crate::sim::ClusterSim;
use crate::workload::WorkloadSource;

pub const HOST_FEATURES: usize = 4;
pub const JOB_FEATURES: usize = 2;

pub use crate::heuristics::placement::Placement as Heuristic;

#[derive(Debug, Clone)]
pub struct PlaceEnv {
    config: EnvConfig,
    sim: ClusterSim,
    done: bool,
    inv_job_cores: f32,
    inv_job_mem: f32,
}

impl PlaceEnv {
    pub fn new(config: EnvConfig, seed: u64) -> SimResult<Self> {
        if let WorkloadSource::Synthetic(c) = &config.source {
            c.validate()?;
        }
        let mut env = Self { config, sim: ClusterSim::default(), done: true,
                             inv_job_cores: 1.0, inv_job_mem: 1.0 };
        env.reset(seed);
        Ok(env)
    }

    pub fn num_hosts(&self) -> usize {
        self.sim.cluster.len()
    }

    pub fn now(&self) -> u64 {
        self.sim.now
    }

    fn head_fits_somewhere(&self) -> bool {
        self.sim.queue.first().is_some_and(|&j| self.sim.cluster.fits_somewhere(&self.sim.jobs[j]))
    }

    /// Processes events until the head job fits on some host or the episode ends.
    fn advance_to_decision(&mut self) -> f64 {
        let mut waited = 0.0;
        while !self.head_fits_somewhere() {
            match self.sim.advance() {
                Some(w) => waited += w,
                None => break,
            }
        }
        if self.sim.all_started() || self.sim.queue.is_empty() {
            self.done = true;
        }
        waited
    }

    pub fn heuristic_action(&self, rule: Heuristic) -> Option<usize> {
        if self.done {
            return None;
        }
        let job = &self.sim.jobs[*self.sim.queue.first()?];
        rule.choose(&self.sim.cluster, job, self.sim.now)
    }
}

impl Env for PlaceEnv {
    fn obs_dim(&self) -> usize {
        self.config.source.num_hosts() * HOST_FEATURES + JOB_FEATURES
    }

    fn action_dim(&self) -> usize {
        self.config.source.num_hosts()
    }

    fn reset(&mut self, seed: u64) {
        load_episode(&mut self.sim, &self.config.source, seed);
        let (cores, mem) = self.sim.max_job_request();
        self.inv_job_cores = 1.0 / cores as f32;
        self.inv_job_mem = 1.0 / mem as f32;
        self.done = false;
        self.advance_to_decision();
    }

    fn step(&mut self, host: usize) -> SimResult<f64> {
        if self.done {
            return Err(SimError::EpisodeOver);
        }
        let before = self.sim.start_order.len();
        self.sim.start_from_queue(0, host)?;
        let waited = self.advance_to_decision();
        if self.done {
            self.sim.drain();
        }
        Ok(reward(self.config.reward, &self.sim, waited, before, self.done))
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn observe(&self, out: &mut [f32]) {
        let c = &self.sim.cluster;
        let (hosts, tail) = out.split_at_mut(c.len() * HOST_FEATURES);
        hosts.copy_from_slice(&c.host_rows);
        match self.sim.queue.first() {
            Some(&j) if !self.done => {
                let job = &self.sim.jobs[j];
                tail[0] = job.cores as f32 * self.inv_job_cores;
                tail[1] = job.mem_mb as f32 * self.inv_job_mem;
            }
            _ => tail.fill(0.0),
        }
    }

    fn action_mask(&self, out: &mut [i8]) {
        match self.sim.queue.first() {
            Some(&j) if !self.done => self.sim.cluster.fit_mask(&self.sim.jobs[j], out),
            _ => out.fill(0),
        }
    }

    fn metrics(&self) -> EpisodeMetrics {
        self.sim.metrics()
    }

    fn sim(&self) -> Option<&ClusterSim> {
        Some(&self.sim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::RewardKind;
    use crate::workload::WorkloadConfig;

    fn small(reward: RewardKind) -> EnvConfig {
        EnvConfig {
            source: WorkloadSource::Synthetic(WorkloadConfig {
                num_hosts: 3,
                episode_length: 40,
                max_jobs_per_step: 8,
                ..Default::default()
            }),
            reward,
        }
    }

    fn run(rule: Heuristic, seed: u64, reward: RewardKind) -> (f64, PlaceEnv) {
        let mut env = PlaceEnv::new(small(reward), seed).unwrap();
        let mut ret = 0.0;
        while !env.is_done() {
            let a = env.heuristic_action(rule).unwrap();
            ret += env.step(a).unwrap();
        }
        (ret, env)
    }

    #[test]
    fn every_job_runs_once_and_ends() {
        let (ret, env) = run(Heuristic::FirstFit, 7, RewardKind::Wait);
        let jobs = &env.sim().unwrap().jobs;
        assert!(jobs.iter().all(|j| j.start.is_some() && j.end.is_some()));
        assert!(jobs.iter().all(|j| j.end.unwrap() == j.start.unwrap() + j.runtime));
        assert!(jobs.iter().all(|j| j.start.unwrap() >= j.submit));
        let m = env.metrics();
        assert_eq!((m.jobs, m.completed), (40, 40));
        let total_wait: f64 = jobs.iter().map(|j| j.wait().unwrap() as f64).sum();
        assert!((ret + total_wait / 3600.0).abs() < 1e-9, "{ret} vs {total_wait}");
        assert!(m.utilization > 0.0 && m.utilization <= 1.0);
        assert!(env.sim().unwrap().cluster.hosts.iter().all(|h| h.used_cores == 0));
    }

    #[test]
    fn dense_and_terminal_bsld_rewards_agree() {
        let (dense, a) = run(Heuristic::BestFit, 3, RewardKind::BsldDense);
        let (terminal, b) = run(Heuristic::BestFit, 3, RewardKind::BsldTerminal);
        assert!((dense - terminal).abs() < 1e-9);
        assert!((terminal + a.metrics().mean_bounded_slowdown).abs() < 1e-9);
        assert_eq!(a.metrics(), b.metrics());
    }

    #[test]
    fn invalid_actions_are_errors_not_panics() {
        let mut env = PlaceEnv::new(small(RewardKind::Wait), 1).unwrap();
        assert!(matches!(env.step(99), Err(SimError::InvalidAction { .. })));
        let (_, mut finished) = run(Heuristic::BestFit, 1, RewardKind::Wait);
        assert_eq!(finished.step(0), Err(SimError::EpisodeOver));
    }

    #[test]
    fn observation_in_unit_range_and_mask_matches_fit() {
        let env = PlaceEnv::new(small(RewardKind::Wait), 3).unwrap();
        let mut mask = vec![0i8; 3];
        env.action_mask(&mut mask);
        assert!(mask.contains(&1));
        let mut obs = vec![0f32; env.obs_dim()];
        env.observe(&mut obs);
        assert!(obs.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)));
    }
}
