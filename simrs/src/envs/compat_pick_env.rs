//! The `pick` mode under RLScheduler's protocol: the agent picks the next job from a window of
//! the queue in arrival order while the machine follows `replay_compat`'s semantics exactly
//! (whole-node allocation, the picked job blocks until it fits, shadow backfilling). A policy
//! evaluated here is therefore comparable with RLScheduler's published table, and a heuristic
//! driven through this environment scores what `replay_compat` scores.
//!
//! Episodes are windows of `episode_length` consecutive jobs: a seeded random start for
//! training, a given start for evaluation (`reset_window`).
//!
//! Observation (f32, `K * 8`): RLScheduler's eight job features (see `job_features`), scaled
//! by the whole trace's maxima. Mask (i8, `K`): 1 for each filled slot.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::envs::env::Env;
use crate::error::{SimError, SimResult};
use crate::job_features::{EMPTY_SLOT, JOB_FEATURES};
use crate::metrics::EpisodeMetrics;
use crate::heuristics::policy::Priority;
use crate::replay::compat::{compat_key, CompatSim, CompatWorkload};
use crate::reward::RewardKind;
use crate::sim::ClusterSim;

const MAX_WAIT_S: f32 = 12.0 * 3600.0;
const ALMOST_ONE: f32 = 1.0 - 1e-5;

/// Reciprocals of the trace's largest request, width, memory and ids.
#[derive(Debug, Clone, Copy)]
struct TraceScales {
    inv_requested: f32,
    inv_procs: f32,
    inv_ids: [f32; 3],
}

impl TraceScales {
    fn new(w: &CompatWorkload) -> Self {
        let inv = |x: i64| if x > 0 { 1.0 / x as f32 } else { 0.0 };
        let max_id = |k: usize| w.ids.iter().map(|ids| ids[k]).max().unwrap_or(0);
        Self {
            inv_requested: inv(w.jobs.iter().map(|j| j.requested).max().unwrap_or(0)),
            inv_procs: inv(w.max_procs),
            inv_ids: [inv(max_id(0)), inv(max_id(1)), inv(max_id(2))],
        }
    }
}

fn scaled(value: i64, inv: f32) -> f32 {
    if value < 0 || inv == 0.0 {
        1.0 // unknown
    } else {
        (value as f32 * inv).min(ALMOST_ONE)
    }
}

#[derive(Debug, Clone)]
pub struct CompatPickEnv {
    workload: Arc<CompatWorkload>,
    scales: TraceScales,
    episode_length: usize,
    window: usize,
    backfill: bool,
    reward: RewardKind,
    sim: CompatSim,
    done: bool,
}

impl CompatPickEnv {
    pub fn new(workload: Arc<CompatWorkload>, episode_length: usize, window: usize,
               backfill: bool, reward: RewardKind, seed: u64) -> SimResult<Self> {
        if window == 0 {
            return Err(SimError::InvalidConfig("window must be at least 1".into()));
        }
        if episode_length == 0 || episode_length > workload.jobs.len() {
            return Err(SimError::InvalidConfig(format!(
                "episode_length must be within 1..={} for this trace", workload.jobs.len()
            )));
        }
        if !matches!(reward, RewardKind::BsldTerminal | RewardKind::BsldDense | RewardKind::Utilization) {
            return Err(SimError::InvalidConfig(
                "the rlscheduler protocol rewards bsld_terminal, bsld_dense or utilization".into(),
            ));
        }
        if let Some(j) = (0..workload.jobs.len()).find(|&j| workload.nodes_needed(j) > workload.nodes) {
            return Err(SimError::InvalidConfig(format!(
                "job {j} needs more nodes than the trace's {}", workload.nodes
            )));
        }
        let sim = CompatSim::new(Arc::clone(&workload), 0, episode_length);
        let scales = TraceScales::new(&workload);
        let mut env = Self { workload, scales, episode_length, window, backfill, reward, sim, done: true };
        env.reset(seed);
        Ok(env)
    }

    /// Starts the episode at job `start` of the trace (evaluation windows).
    pub fn reset_window(&mut self, start: usize) -> SimResult<()> {
        if start + self.episode_length > self.workload.jobs.len() {
            return Err(SimError::InvalidConfig(format!(
                "a window of {} jobs starting at {start} runs past the trace's {} jobs",
                self.episode_length, self.workload.jobs.len()
            )));
        }
        self.sim = CompatSim::new(Arc::clone(&self.workload), start, self.episode_length);
        self.done = false;
        self.order_queue();
        Ok(())
    }

    /// RLScheduler's observation lists the queue by submit time (a stable sort).
    fn order_queue(&mut self) {
        let jobs = &self.workload.jobs;
        self.sim.queue.sort_by_key(|&q| jobs[q].submit);
    }

    fn visible(&self) -> usize {
        if self.done { 0 } else { self.sim.queue.len().min(self.window) }
    }

    /// A named heuristic's choice of window slot, with that code's keys (for baselines).
    pub fn heuristic_action(&self, priority: Priority) -> Option<usize> {
        if self.done {
            return None;
        }
        (0..self.visible()).min_by(|&a, &b| {
            let key = |i: usize| compat_key(&self.workload, priority, self.sim.queue[i]);
            key(a).order(&key(b)).then(a.cmp(&b))
        })
    }

    pub fn nodes(&self) -> usize {
        self.workload.nodes as usize
    }
}

impl Env for CompatPickEnv {
    fn obs_dim(&self) -> usize {
        self.window * JOB_FEATURES
    }

    fn action_dim(&self) -> usize {
        self.window
    }

    fn reset(&mut self, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let start = rng.gen_range(0..=self.workload.jobs.len() - self.episode_length);
        self.reset_window(start).expect("start drawn inside the trace");
    }

    fn step(&mut self, slot: usize) -> SimResult<f64> {
        if self.done {
            return Err(SimError::EpisodeOver);
        }
        if slot >= self.visible() {
            return Err(SimError::InvalidAction { action: slot, reason: "empty window slot" });
        }
        let before = self.sim.bsld_sum;
        let more = self.sim.commit(self.sim.queue[slot], self.backfill);
        self.done = !more;
        self.order_queue();
        let n = self.episode_length as f64;
        Ok(match self.reward {
            RewardKind::BsldDense => -(self.sim.bsld_sum - before) / n,
            RewardKind::BsldTerminal if self.done => -self.sim.mean_bounded_slowdown(),
            RewardKind::Utilization if self.done => self.sim.utilization(),
            _ => 0.0,
        })
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn observe(&self, out: &mut [f32]) {
        let visible = self.visible();
        let s = &self.scales;
        for (i, row) in out.chunks_exact_mut(JOB_FEATURES).enumerate() {
            if i >= visible {
                row.copy_from_slice(&EMPTY_SLOT);
                continue;
            }
            let j = self.sim.queue[i];
            let job = self.workload.jobs[j];
            let ids = self.workload.ids[j];
            row[0] = ((self.sim.now - job.submit).max(0) as f32 / MAX_WAIT_S).min(ALMOST_ONE);
            row[1] = scaled(job.requested, s.inv_requested);
            row[2] = scaled(job.procs, s.inv_procs);
            row[3] = 1.0; // memory: unknown in this protocol
            row[4] = scaled(ids[0], s.inv_ids[0]);
            row[5] = scaled(ids[1], s.inv_ids[1]);
            row[6] = scaled(ids[2], s.inv_ids[2]);
            row[7] = if self.sim.fits(j) { ALMOST_ONE } else { 1e-5 };
        }
    }

    fn action_mask(&self, out: &mut [i8]) {
        let visible = self.visible();
        for (i, m) in out.iter_mut().enumerate() {
            *m = (i < visible) as i8;
        }
    }

    fn metrics(&self) -> EpisodeMetrics {
        let n = self.sim.started.max(1) as f64;
        let len = self.sim.len();
        EpisodeMetrics {
            jobs: len,
            completed: self.sim.started,
            completion_rate: self.sim.started as f64 / len as f64,
            mean_wait_s: self.sim.wait_sum / n,
            mean_bounded_slowdown: self.sim.bsld_sum / n,
            utilization_rlscheduler: self.sim.utilization(),
            ..EpisodeMetrics::default()
        }
    }

    fn sim(&self) -> Option<&ClusterSim> {
        None
    }

    fn now(&self) -> u64 {
        self.sim.now.max(0) as u64
    }

    fn queue_length(&self) -> usize {
        if self.done { 0 } else { self.sim.queue.len() }
    }

    fn num_hosts(&self) -> usize {
        self.nodes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::compat::{replay_window, CompatJob, CompatMetric};

    fn workload() -> Arc<CompatWorkload> {
        // A small machine under load: 8 nodes, jobs of 1-8 nodes, bursts of arrivals.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut t = 0;
        let jobs = (0..400)
            .map(|_| {
                t += rng.gen_range(0..120);
                let run = rng.gen_range(1..2000);
                CompatJob { submit: t, run, requested: run + rng.gen_range(0..500), procs: rng.gen_range(1..=8) }
            })
            .collect();
        Arc::new(CompatWorkload::new(jobs, 8, 8))
    }

    fn drive(env: &mut CompatPickEnv, p: Priority) -> f64 {
        while !env.is_done() {
            let a = env.heuristic_action(p).unwrap();
            env.step(a).unwrap();
        }
        env.metrics().mean_bounded_slowdown
    }

    #[test]
    fn a_heuristic_driven_through_the_env_scores_what_the_replay_scores() {
        let w = workload();
        for backfill in [false, true] {
            for p in [Priority::Fcfs, Priority::Sjf, Priority::F1, Priority::Smallest] {
                let mut env = CompatPickEnv::new(Arc::clone(&w), 256, 400, backfill,
                                                 RewardKind::BsldTerminal, 0).unwrap();
                env.reset_window(100).unwrap();
                let replayed = replay_window(&w, 100, 256, p, backfill,
                                                      CompatMetric::BoundedSlowdown);
                assert!((drive(&mut env, p) - replayed).abs() < 1e-9, "{p:?} backfill {backfill}");
            }
        }
    }

    #[test]
    fn terminal_and_dense_rewards_both_sum_to_minus_the_mean_bounded_slowdown() {
        let w = workload();
        for reward in [RewardKind::BsldTerminal, RewardKind::BsldDense] {
            let mut env = CompatPickEnv::new(Arc::clone(&w), 128, 16, false, reward, 3).unwrap();
            let mut total = 0.0;
            while !env.is_done() {
                total += env.step(0).unwrap();
            }
            assert!((total + env.metrics().mean_bounded_slowdown).abs() < 1e-9);
        }
    }

    #[test]
    fn empty_slots_are_masked_and_refused() {
        let w = workload();
        let mut env = CompatPickEnv::new(w, 64, 16, false, RewardKind::BsldTerminal, 1).unwrap();
        let mut mask = vec![0i8; 16];
        env.action_mask(&mut mask);
        // A window starts with only its first job queued.
        assert_eq!(mask.iter().filter(|&&m| m == 1).count(), 1);
        assert_eq!(mask[0], 1);
        assert!(matches!(env.step(1), Err(SimError::InvalidAction { .. })));
        assert!(env.reset_window(10_000).is_err());
    }
}
