//! Episodes scored against a heuristic, for training: at every reset the same episode is also
//! played to its end by a heuristic on a copy of the environment, and at the episode's last
//! step the heuristic's return is subtracted. An episode's return is then how much better than
//! the heuristic the agent did on the same jobs.
//!
//! Why: in a trace window the jobs still to come decide most of the return (some windows are
//! hard for every policy), and the critic cannot see them. The heuristic's return depends on
//! those jobs and never on the agent's actions, so subtracting it leaves the policy gradient's
//! expectation as it was while most of that variance cancels (a control variate; the greedy
//! rollout baseline of Kool et al., ICLR 2019, in PPO's setting).

use crate::envs::env::Env;
use crate::error::{SimError, SimResult};
use crate::metrics::EpisodeMetrics;
use crate::heuristics::placement::Placement;
use crate::heuristics::policy::Priority;
use crate::sim::ClusterSim;

/// A heuristic a mode can play: a placement rule (place) or a priority rule (pick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Place(Placement),
    Pick(Priority),
}

/// An environment that can play a heuristic's next decision and be copied mid-episode.
pub trait HeuristicEnv: Env + Clone {
    /// The action `rule` takes now; None when the mode has no such rule or the episode ended.
    fn heuristic(&self, rule: Rule) -> Option<usize>;
}

#[derive(Debug, Clone)]
pub struct Versus<E: HeuristicEnv> {
    inner: E,
    rule: Rule,
    /// The heuristic's return on the current episode.
    baseline: f64,
}

impl<E: HeuristicEnv> Versus<E> {
    pub fn new(inner: E, rule: Rule) -> SimResult<Self> {
        if inner.heuristic(rule).is_none() && !inner.is_done() {
            return Err(SimError::InvalidConfig(format!(
                "{rule:?} is not a heuristic of this environment's mode"
            )));
        }
        let mut env = Self { inner, rule, baseline: 0.0 };
        env.baseline = env.play_heuristic()?;
        Ok(env)
    }

    pub fn baseline(&self) -> f64 {
        self.baseline
    }

    /// The heuristic's return on a copy of the current episode, from its start.
    fn play_heuristic(&self) -> SimResult<f64> {
        let mut copy = self.inner.clone();
        let mut ret = 0.0;
        while !copy.is_done() {
            let action = copy.heuristic(self.rule).ok_or(SimError::InvalidAction {
                action: usize::MAX,
                reason: "the heuristic found no action before the episode ended",
            })?;
            ret += copy.step(action)?;
        }
        Ok(ret)
    }
}

impl<E: HeuristicEnv> Env for Versus<E> {
    fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }

    fn action_dim(&self) -> usize {
        self.inner.action_dim()
    }

    fn reset(&mut self, seed: u64) {
        self.inner.reset(seed);
        // A heuristic never fails on an episode the environment itself generated; if it ever
        // did, a zero baseline only loses the variance reduction, never correctness.
        self.baseline = self.play_heuristic().unwrap_or(0.0);
    }

    fn step(&mut self, action: usize) -> SimResult<f64> {
        let reward = self.inner.step(action)?;
        Ok(if self.inner.is_done() { reward - self.baseline } else { reward })
    }

    fn is_done(&self) -> bool {
        self.inner.is_done()
    }

    fn observe(&self, out: &mut [f32]) {
        self.inner.observe(out);
    }

    fn action_mask(&self, out: &mut [i8]) {
        self.inner.action_mask(out);
    }

    fn metrics(&self) -> EpisodeMetrics {
        self.inner.metrics()
    }

    fn sim(&self) -> Option<&ClusterSim> {
        self.inner.sim()
    }

    fn now(&self) -> u64 {
        self.inner.now()
    }

    fn queue_length(&self) -> usize {
        self.inner.queue_length()
    }

    fn num_hosts(&self) -> usize {
        self.inner.num_hosts()
    }
}

impl HeuristicEnv for crate::envs::place_env::PlaceEnv {
    fn heuristic(&self, rule: Rule) -> Option<usize> {
        match rule {
            Rule::Place(p) => self.heuristic_action(p),
            Rule::Pick(_) => None,
        }
    }
}

impl HeuristicEnv for crate::envs::pick_env::PickEnv {
    fn heuristic(&self, rule: Rule) -> Option<usize> {
        match rule {
            Rule::Pick(p) => self.heuristic_action(p),
            Rule::Place(_) => None,
        }
    }
}

impl HeuristicEnv for crate::envs::compat_pick_env::CompatPickEnv {
    fn heuristic(&self, rule: Rule) -> Option<usize> {
        match rule {
            Rule::Pick(p) => self.heuristic_action(p),
            Rule::Place(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::env::EnvConfig;
    use crate::envs::place_env::PlaceEnv;
    use crate::reward::RewardKind;
    use crate::workload::{WorkloadConfig, WorkloadSource};

    fn place() -> PlaceEnv {
        let config = EnvConfig {
            source: WorkloadSource::Synthetic(WorkloadConfig {
                num_hosts: 3,
                episode_length: 40,
                max_jobs_per_step: 8,
                mean_interarrival_s: 20.0,
                ..Default::default()
            }),
            reward: RewardKind::Wait,
        };
        PlaceEnv::new(config, 5).unwrap()
    }

    fn play(env: &mut impl Env, choose: impl Fn(&dyn Env) -> usize) -> f64 {
        let mut ret = 0.0;
        while !env.is_done() {
            let a = choose(&*env);
            ret += env.step(a).unwrap();
        }
        ret
    }

    fn first_allowed(env: &dyn Env) -> usize {
        let mut mask = vec![0i8; env.action_dim()];
        env.action_mask(&mut mask);
        mask.iter().position(|&m| m == 1).unwrap()
    }

    #[test]
    fn the_return_is_the_agents_minus_the_heuristics_on_the_same_episode() {
        let rule = Rule::Place(Placement::BestFit);
        for seed in [5, 6, 7] {
            let mut plain = place();
            plain.reset(seed);
            let heuristic = play(&mut plain.clone(), |e| {
                let mut m = vec![0i8; e.action_dim()];
                e.action_mask(&mut m);
                // Best-fit by hand: the fitting host with the fewest free cores left.
                let sim = e.sim().unwrap();
                let job = &sim.jobs[sim.queue[0]];
                (0..m.len()).filter(|&h| m[h] == 1)
                    .min_by_key(|&h| (sim.cluster.hosts[h].free_cores() - job.cores,
                                      sim.cluster.hosts[h].free_mem_mb() - job.mem_mb, h))
                    .unwrap()
            });
            let mut versus = Versus::new(place(), rule).unwrap();
            versus.reset(seed);
            assert!((versus.baseline() - heuristic).abs() < 1e-12);
            assert!(heuristic < 0.0); // jobs waited: a baseline that matters
            let agent_alone = play(&mut plain, first_allowed);
            let agent_versus = play(&mut versus, first_allowed);
            assert!((agent_versus - (agent_alone - heuristic)).abs() < 1e-9);
            assert_eq!(versus.metrics(), plain.metrics()); // the episode itself is unchanged
        }
    }

    #[test]
    fn a_rule_of_another_mode_is_refused() {
        assert!(matches!(Versus::new(place(), Rule::Pick(Priority::Fcfs)),
                         Err(SimError::InvalidConfig(_))));
    }
}
