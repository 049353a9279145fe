//! N `place` environments stepped together, with automatic reset, so the trainer makes one call
//! per step for the whole batch instead of looping over environments in Python.

use crate::error::{SimError, SimResult};
use crate::place_env::{EpisodeMetrics, PlaceEnv};
use crate::workload::WorkloadConfig;

/// Per-environment outcome of an episode that ended during the last `step`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FinishedEpisode {
    pub ret: f64,
    pub length: usize,
    pub metrics: EpisodeMetrics,
}

#[derive(Debug, Clone)]
pub struct VecPlaceEnv {
    envs: Vec<PlaceEnv>,
    base_seed: u64,
    episodes_started: u64,
    returns: Vec<f64>,
    lengths: Vec<usize>,
}

impl VecPlaceEnv {
    pub fn new(config: WorkloadConfig, num_envs: usize, seed: u64) -> SimResult<Self> {
        if num_envs == 0 {
            return Err(SimError::InvalidConfig("num_envs must be at least 1".into()));
        }
        let envs = (0..num_envs)
            .map(|i| PlaceEnv::new(config.clone(), seed.wrapping_add(i as u64)))
            .collect::<SimResult<Vec<_>>>()?;
        Ok(Self {
            envs,
            base_seed: seed,
            episodes_started: num_envs as u64,
            returns: vec![0.0; num_envs],
            lengths: vec![0; num_envs],
        })
    }

    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    pub fn num_hosts(&self) -> usize {
        self.envs[0].num_hosts()
    }

    pub fn obs_dim(&self) -> usize {
        self.envs[0].obs_dim()
    }

    fn next_seed(&mut self) -> u64 {
        let s = self.base_seed.wrapping_add(self.episodes_started);
        self.episodes_started += 1;
        s
    }

    pub fn reset(&mut self, seed: u64) {
        self.base_seed = seed;
        self.episodes_started = 0;
        for i in 0..self.envs.len() {
            let s = self.next_seed();
            self.envs[i].reset(s);
            self.returns[i] = 0.0;
            self.lengths[i] = 0;
        }
    }

    /// Applies one action per environment. Environments whose episode ends are reset at once
    /// (their observation is the new episode's first); their results come back in `finished`.
    pub fn step(
        &mut self,
        actions: &[usize],
        rewards: &mut [f32],
        dones: &mut [bool],
        finished: &mut [Option<FinishedEpisode>],
    ) -> SimResult<()> {
        if actions.len() != self.envs.len() {
            return Err(SimError::InvalidConfig(format!(
                "expected {} actions, got {}",
                self.envs.len(),
                actions.len()
            )));
        }
        for i in 0..self.envs.len() {
            let r = self.envs[i].step(actions[i])?;
            self.returns[i] += r;
            self.lengths[i] += 1;
            rewards[i] = r as f32;
            dones[i] = self.envs[i].is_done();
            finished[i] = None;
            if dones[i] {
                finished[i] = Some(FinishedEpisode {
                    ret: self.returns[i],
                    length: self.lengths[i],
                    metrics: self.envs[i].metrics(),
                });
                let s = self.next_seed();
                self.envs[i].reset(s);
                self.returns[i] = 0.0;
                self.lengths[i] = 0;
            }
        }
        Ok(())
    }

    pub fn observe(&self, out: &mut [f32]) {
        let d = self.obs_dim();
        for (env, chunk) in self.envs.iter().zip(out.chunks_mut(d)) {
            env.observe(chunk);
        }
    }

    pub fn action_mask(&self, out: &mut [i8]) {
        let h = self.num_hosts();
        for (env, chunk) in self.envs.iter().zip(out.chunks_mut(h)) {
            env.action_mask(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::place_env::Heuristic;

    #[test]
    fn auto_resets_and_reports_finished_episodes() {
        let cfg = WorkloadConfig { num_hosts: 2, episode_length: 5, ..Default::default() };
        let mut v = VecPlaceEnv::new(cfg.clone(), 2, 0).unwrap();
        let mut mask = vec![0i8; 4];
        let (mut r, mut d, mut f) = (vec![0f32; 2], vec![false; 2], vec![None; 2]);
        let mut episodes = 0;
        for _ in 0..50 {
            v.action_mask(&mut mask);
            let actions: Vec<usize> =
                mask.chunks(2).map(|m| m.iter().position(|&x| x == 1).unwrap()).collect();
            v.step(&actions, &mut r, &mut d, &mut f).unwrap();
            for (done, fin) in d.iter().zip(&f) {
                assert_eq!(*done, fin.is_some());
                if let Some(e) = fin {
                    assert_eq!(e.length, 5);
                    assert_eq!(e.metrics.jobs, 5);
                    episodes += 1;
                }
            }
        }
        assert_eq!(episodes, 20);
        // The same first-fit actions on a lone env give the same first episode.
        let mut lone = PlaceEnv::new(cfg, 0).unwrap();
        while !lone.is_done() {
            lone.step(lone.heuristic_action(Heuristic::FirstFit).unwrap()).unwrap();
        }
        assert_eq!(lone.metrics().jobs, 5);
    }
}
