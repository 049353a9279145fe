//! N environments of one mode stepped together inside Rust (rayon across cores), with
//! automatic reset in the same step: when an episode ends, its results are reported and the
//! environment's observation is already the next episode's first.

use rayon::prelude::*;

use crate::envs::env::Env;
use crate::error::{SimError, SimResult};
use crate::metrics::EpisodeMetrics;
use crate::heuristics::placement::splitmix64;

/// Outcome of an episode that ended during the last `step`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FinishedEpisode {
    pub ret: f64,
    pub length: usize,
    pub metrics: EpisodeMetrics,
}

pub struct VecEnv {
    envs: Vec<Box<dyn Env>>,
    base_seed: u64,
    // The index of this set's first environment in a larger one split between workers:
    // seeds follow the global index, so the shards step exactly the whole set's episodes.
    first_index: usize,
    episode: Vec<u64>,
    returns: Vec<f64>,
    lengths: Vec<usize>,
}

/// The seed of environment `i`'s `k`-th episode: independent of thread scheduling.
pub fn episode_seed(base: u64, i: usize, k: u64) -> u64 {
    if i == 0 && k == 0 {
        return base; // env 0's first episode uses the seed as given, like a lone env
    }
    splitmix64(base ^ splitmix64((i as u64) << 32 | (k & 0xFFFF_FFFF)))
}

impl VecEnv {
    pub fn new(envs: Vec<Box<dyn Env>>, seed: u64) -> SimResult<Self> {
        Self::shard(envs, seed, 0)
    }

    /// Environments `first_index..first_index + envs.len()` of a set seeded by `seed`.
    pub fn shard(mut envs: Vec<Box<dyn Env>>, seed: u64, first_index: usize) -> SimResult<Self> {
        if envs.is_empty() {
            return Err(SimError::InvalidConfig("num_envs must be at least 1".into()));
        }
        let n = envs.len();
        for (i, env) in envs.iter_mut().enumerate() {
            env.reset(episode_seed(seed, first_index + i, 0));
        }
        Ok(Self { envs, base_seed: seed, first_index, episode: vec![0; n],
                  returns: vec![0.0; n], lengths: vec![0; n] })
    }

    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    pub fn obs_dim(&self) -> usize {
        self.envs[0].obs_dim()
    }

    pub fn action_dim(&self) -> usize {
        self.envs[0].action_dim()
    }

    pub fn reset(&mut self, seed: u64) {
        self.base_seed = seed;
        let (base, first) = (seed, self.first_index);
        self.envs
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, env)| env.reset(episode_seed(base, first + i, 0)));
        self.episode.fill(0);
        self.returns.fill(0.0);
        self.lengths.fill(0);
    }

    pub fn observe(&self, obs: &mut [f32], masks: &mut [i8]) {
        let (d, a) = (self.obs_dim(), self.action_dim());
        self.envs
            .par_iter()
            .zip(obs.par_chunks_mut(d))
            .zip(masks.par_chunks_mut(a))
            .for_each(|((env, o), m)| {
                env.observe(o);
                env.action_mask(m);
            });
    }

    /// Steps every environment and writes the next observations and masks. Every slice holds
    /// one entry (or row) per environment.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        actions: &[i64],
        obs: &mut [f32],
        masks: &mut [i8],
        rewards: &mut [f32],
        dones: &mut [u8],
        finished: &mut [Option<FinishedEpisode>],
    ) -> SimResult<()> {
        let n = self.envs.len();
        let (d, a) = (self.obs_dim(), self.action_dim());
        if actions.len() != n || rewards.len() != n || dones.len() != n || finished.len() != n
            || obs.len() != n * d || masks.len() != n * a
        {
            return Err(SimError::InvalidConfig(format!(
                "buffers must hold {n} environments ({d} observation floats, {a} mask entries each)"
            )));
        }
        let (base, first) = (self.base_seed, self.first_index);
        let results: Vec<SimResult<()>> = self
            .envs
            .par_iter_mut()
            .enumerate()
            .zip(actions.par_iter())
            .zip(obs.par_chunks_mut(d))
            .zip(masks.par_chunks_mut(a))
            .zip(rewards.par_iter_mut())
            .zip(dones.par_iter_mut())
            .zip(finished.par_iter_mut())
            .zip(self.returns.par_iter_mut())
            .zip(self.lengths.par_iter_mut())
            .zip(self.episode.par_iter_mut())
            .map(|((((((((((i, env), &act), o), m), r), done), fin), ret), len), ep)| {
                if act < 0 {
                    return Err(SimError::InvalidAction { action: usize::MAX, reason: "negative action" });
                }
                let reward = env.step(act as usize)?;
                *ret += reward;
                *len += 1;
                *r = reward as f32;
                *done = env.is_done() as u8;
                *fin = None;
                if env.is_done() {
                    *fin = Some(FinishedEpisode { ret: *ret, length: *len, metrics: env.metrics() });
                    *ep += 1;
                    env.reset(episode_seed(base, first + i, *ep));
                    *ret = 0.0;
                    *len = 0;
                }
                env.observe(o);
                env.action_mask(m);
                Ok(())
            })
            .collect();
        results.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::env::EnvConfig;
    use crate::envs::place_env::{Heuristic, PlaceEnv};
    use crate::reward::RewardKind;
    use crate::workload::{WorkloadConfig, WorkloadSource};

    fn cfg() -> EnvConfig {
        EnvConfig {
            source: WorkloadSource::Synthetic(WorkloadConfig {
                num_hosts: 2,
                episode_length: 5,
                ..Default::default()
            }),
            reward: RewardKind::Wait,
        }
    }

    #[test]
    fn auto_resets_and_reports_finished_episodes() {
        let envs: Vec<Box<dyn Env>> =
            (0..2).map(|_| Box::new(PlaceEnv::new(cfg(), 0).unwrap()) as Box<dyn Env>).collect();
        let mut v = VecEnv::new(envs, 0).unwrap();
        let (mut obs, mut mask) = (vec![0f32; 2 * v.obs_dim()], vec![0i8; 4]);
        v.observe(&mut obs, &mut mask);
        let (mut r, mut d, mut f) = (vec![0f32; 2], vec![0u8; 2], vec![None; 2]);
        let mut episodes = 0;
        for _ in 0..50 {
            let actions: Vec<i64> =
                mask.chunks(2).map(|m| m.iter().position(|&x| x == 1).unwrap() as i64).collect();
            v.step(&actions, &mut obs, &mut mask, &mut r, &mut d, &mut f).unwrap();
            for (done, fin) in d.iter().zip(&f) {
                assert_eq!(*done == 1, fin.is_some());
                if let Some(e) = fin {
                    assert_eq!((e.length, e.metrics.jobs), (5, 5));
                    episodes += 1;
                }
            }
        }
        assert_eq!(episodes, 20);
        // Env 0's first episode is the lone env's episode for the same seed.
        let mut lone = PlaceEnv::new(cfg(), 0).unwrap();
        while !lone.is_done() {
            lone.step(lone.heuristic_action(Heuristic::FirstFit).unwrap()).unwrap();
        }
        assert_eq!(lone.metrics().jobs, 5);
    }

    #[test]
    fn shards_step_exactly_the_whole_sets_episodes() {
        let make = |n: usize| -> Vec<Box<dyn Env>> {
            (0..n).map(|_| Box::new(PlaceEnv::new(cfg(), 0).unwrap()) as Box<dyn Env>).collect()
        };
        let mut whole = VecEnv::new(make(4), 7).unwrap();
        let mut shards = [VecEnv::shard(make(2), 7, 0).unwrap(), VecEnv::shard(make(2), 7, 2).unwrap()];
        let d = whole.obs_dim();
        let (mut obs, mut mask) = (vec![0f32; 4 * d], vec![0i8; 8]);
        let (mut r, mut done, mut f) = (vec![0f32; 4], vec![0u8; 4], vec![None; 4]);
        whole.observe(&mut obs, &mut mask);
        for step in 0..23 {
            let actions: Vec<i64> = mask
                .chunks(2)
                .map(|m| m.iter().rposition(|&x| x == 1).unwrap() as i64)
                .collect();
            whole.step(&actions, &mut obs, &mut mask, &mut r, &mut done, &mut f).unwrap();
            let mut parts = Vec::new();
            for (k, shard) in shards.iter_mut().enumerate() {
                let (mut o, mut m) = (vec![0f32; 2 * d], vec![0i8; 4]);
                let (mut rr, mut dd, mut ff) = (vec![0f32; 2], vec![0u8; 2], vec![None; 2]);
                shard.step(&actions[2 * k..2 * k + 2], &mut o, &mut m, &mut rr, &mut dd, &mut ff)
                    .unwrap();
                parts.push((o, m, rr, dd));
            }
            let joined_obs: Vec<f32> = parts.iter().flat_map(|p| p.0.clone()).collect();
            let joined_mask: Vec<i8> = parts.iter().flat_map(|p| p.1.clone()).collect();
            let joined_r: Vec<f32> = parts.iter().flat_map(|p| p.2.clone()).collect();
            assert_eq!((&joined_obs, &joined_mask, &joined_r), (&obs, &mask, &r), "step {step}");
        }
    }
}
