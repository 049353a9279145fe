//! What every decision mode shares: its configuration, the reward bookkeeping, and the
//! interface the vector environment drives.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cluster::Cluster;
use crate::error::SimResult;
use crate::metrics::EpisodeMetrics;
use crate::reward::RewardKind;
use crate::sim::ClusterSim;
use crate::workload::WorkloadSource;

const SECONDS_PER_HOUR: f64 = 3600.0;

#[derive(Debug, Clone)]
pub struct EnvConfig {
    pub source: WorkloadSource,
    pub reward: RewardKind,
}

/// The interface the vector environment and the bindings drive, the same for every mode.
pub trait Env: Send + Sync {
    fn obs_dim(&self) -> usize;
    /// Length of the action mask (the size of the discrete action space).
    fn action_dim(&self) -> usize;
    fn reset(&mut self, seed: u64);
    /// Applies an action; returns the reward.
    fn step(&mut self, action: usize) -> SimResult<f64>;
    fn is_done(&self) -> bool;
    fn observe(&self, out: &mut [f32]);
    fn action_mask(&self, out: &mut [i8]);
    fn metrics(&self) -> EpisodeMetrics;
    /// The general simulator behind the mode; None for the RLScheduler-compatible replay.
    fn sim(&self) -> Option<&ClusterSim>;
    /// Simulated time (s).
    fn now(&self) -> u64 {
        self.sim().map_or(0, |s| s.now)
    }
    fn queue_length(&self) -> usize {
        self.sim().map_or(0, |s| s.queue.len())
    }
    fn num_hosts(&self) -> usize {
        self.sim().map_or(0, |s| s.cluster.len())
    }
}

/// Draws an episode and loads it into the simulator.
pub fn load_episode(sim: &mut ClusterSim, source: &WorkloadSource, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (hosts, jobs) = source.episode(&mut rng);
    sim.load(Cluster::new(hosts), jobs);
}

/// Turns what happened during one step into the configured reward.
pub fn reward(kind: RewardKind, sim: &ClusterSim, waited_job_s: f64, started_before: usize,
              done: bool) -> f64 {
    match kind {
        RewardKind::Wait => -waited_job_s / SECONDS_PER_HOUR,
        RewardKind::BsldDense => {
            let n = sim.jobs.len().max(1) as f64;
            -sim.start_order[started_before..]
                .iter()
                .filter_map(|&j| sim.jobs[j].bounded_slowdown())
                .sum::<f64>()
                / n
        }
        RewardKind::BsldTerminal if done => -sim.metrics().mean_bounded_slowdown,
        RewardKind::Utilization if done => sim.metrics().utilization,
        RewardKind::LoadBalance => -sim.cluster.load_imbalance(),
        RewardKind::BsldTerminal | RewardKind::Utilization => 0.0,
    }
}
