//! The `hierarchical` decision mode: first a job from the whole queue, then a host for it,
//! each with its own mask, so no action list is ever truncated.
//!
//! Observation (f32): `[phase, chosen job's 8 features, num_hosts * 4 host features,
//! max_jobs * 8 job features]`, where phase is 0 when choosing a job and 1 when choosing a
//! host, host features are as in `place`, and `max_jobs` is the episode length (the whole
//! episode may be queued at once). Action space: `max(max_jobs, num_hosts)`. Job phase mask:
//! queued jobs (arrival order) that fit on some host now. Host phase mask: hosts the chosen job
//! fits on. Time advances only when no queued job fits anywhere.

use crate::cluster::FitIndex;
use crate::envs::env::{load_episode, reward, Env, EnvConfig};
use crate::error::{SimError, SimResult};
use crate::heuristics::placement::Placement;
use crate::heuristics::policy::Priority;
use crate::job_features::{write_job_row, JobScales, EMPTY_SLOT, JOB_FEATURES};
use crate::metrics::EpisodeMetrics;
use crate::envs::place_env::HOST_FEATURES;
use crate::sim::ClusterSim;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Job,
    Host { queue_pos: usize },
}

#[derive(Debug, Clone)]
pub struct HierEnv {
    config: EnvConfig,
    sim: ClusterSim,
    scales: JobScales,
    fit: FitIndex,
    phase: Phase,
    done: bool,
    max_jobs: usize,
    num_hosts: usize,
    pending_wait: f64,
}

impl HierEnv {
    pub fn new(config: EnvConfig, seed: u64) -> SimResult<Self> {
        if let crate::workload::WorkloadSource::Synthetic(c) = &config.source {
            c.validate()?;
        }
        let max_jobs = config.source.episode_length();
        let num_hosts = config.source.num_hosts();
        let mut env = Self {
            config,
            sim: ClusterSim::default(),
            scales: JobScales::default(),
            fit: FitIndex::default(),
            phase: Phase::Job,
            done: true,
            max_jobs,
            num_hosts,
            pending_wait: 0.0,
        };
        env.reset(seed);
        Ok(env)
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A heuristic pair's action now (None once the episode is over). In the job phase, the
    /// queued job `priority` ranks first among those that fit on some host now (the job
    /// mask), ties to the earlier arrival; in the host phase, `placement`'s host for the
    /// chosen job.
    pub fn heuristic_action(&self, priority: Priority, placement: Placement) -> Option<usize> {
        if self.done {
            return None;
        }
        match self.phase {
            Phase::Job => {
                let key = |i: usize| priority.job_key(&self.sim, self.sim.queue[i]);
                (0..self.sim.queue.len())
                    .filter(|&i| {
                        self.fit.fits_somewhere(&self.sim.cluster, &self.sim.jobs[self.sim.queue[i]])
                    })
                    .min_by(|&a, &b| key(a).order(&key(b)).then(a.cmp(&b)))
            }
            Phase::Host { queue_pos } => {
                let job = &self.sim.jobs[self.sim.queue[queue_pos]];
                placement.choose(&self.sim.cluster, job, self.sim.now)
            }
        }
    }

    fn any_fits(&self) -> bool {
        self.sim.queue.iter().any(|&j| self.fit.fits_somewhere(&self.sim.cluster, &self.sim.jobs[j]))
    }

    fn advance_to_decision(&mut self) -> f64 {
        let mut waited = 0.0;
        FitIndex::build(&self.sim.cluster, &mut self.fit);
        while !self.sim.all_started() && !self.any_fits() {
            match self.sim.advance() {
                Some(w) => waited += w,
                None => break,
            }
            FitIndex::build(&self.sim.cluster, &mut self.fit);
        }
        if self.sim.all_started() {
            self.done = true;
            self.sim.drain();
        }
        waited
    }
}

impl Env for HierEnv {
    fn obs_dim(&self) -> usize {
        1 + JOB_FEATURES + self.num_hosts * HOST_FEATURES + self.max_jobs * JOB_FEATURES
    }

    fn action_dim(&self) -> usize {
        self.max_jobs.max(self.num_hosts)
    }

    fn reset(&mut self, seed: u64) {
        load_episode(&mut self.sim, &self.config.source, seed);
        let max_cores = self.sim.cluster.hosts.iter().map(|h| h.cores).max().unwrap_or(1);
        self.scales = JobScales::new(&self.sim.jobs, max_cores);
        self.phase = Phase::Job;
        self.done = false;
        self.pending_wait = self.advance_to_decision();
    }

    fn step(&mut self, action: usize) -> SimResult<f64> {
        if self.done {
            return Err(SimError::EpisodeOver);
        }
        match self.phase {
            Phase::Job => {
                let job = *self.sim.queue.get(action).ok_or(SimError::InvalidAction {
                    action,
                    reason: "no queued job at that position",
                })?;
                if !self.fit.fits_somewhere(&self.sim.cluster, &self.sim.jobs[job]) {
                    return Err(SimError::InvalidAction {
                        action,
                        reason: "that job fits on no host now (check the action mask)",
                    });
                }
                self.phase = Phase::Host { queue_pos: action };
                Ok(0.0)
            }
            Phase::Host { queue_pos } => {
                let before = self.sim.start_order.len();
                self.sim.start_from_queue(queue_pos, action)?;
                self.phase = Phase::Job;
                let waited = std::mem::take(&mut self.pending_wait) + self.advance_to_decision();
                Ok(reward(self.config.reward, &self.sim, waited, before, self.done))
            }
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn observe(&self, out: &mut [f32]) {
        let (head, rest) = out.split_at_mut(1 + JOB_FEATURES);
        let (hosts, jobs) = rest.split_at_mut(self.num_hosts * HOST_FEATURES);
        head[0] = matches!(self.phase, Phase::Host { .. }) as u8 as f32;
        match self.phase {
            Phase::Host { queue_pos } if !self.done => {
                let job = &self.sim.jobs[self.sim.queue[queue_pos]];
                write_job_row(&mut head[1..], job, self.sim.now, &self.scales, true);
            }
            _ => head[1..].copy_from_slice(&EMPTY_SLOT),
        }
        let c = &self.sim.cluster;
        hosts.copy_from_slice(&c.host_rows);
        let queued = if self.done { 0 } else { self.sim.queue.len() };
        for (i, row) in jobs.chunks_exact_mut(JOB_FEATURES).enumerate() {
            if i < queued {
                let job = &self.sim.jobs[self.sim.queue[i]];
                let can = self.fit.fits_somewhere(c, job);
                write_job_row(row, job, self.sim.now, &self.scales, can);
            } else {
                row.copy_from_slice(&EMPTY_SLOT);
            }
        }
    }

    fn action_mask(&self, out: &mut [i8]) {
        out.fill(0);
        if self.done {
            return;
        }
        match self.phase {
            Phase::Job => {
                for (m, &j) in out.iter_mut().zip(&self.sim.queue) {
                    *m = self.fit.fits_somewhere(&self.sim.cluster, &self.sim.jobs[j]) as i8;
                }
            }
            Phase::Host { queue_pos } => {
                let job = &self.sim.jobs[self.sim.queue[queue_pos]];
                self.sim.cluster.fit_mask(job, &mut out[..self.num_hosts]);
            }
        }
    }

    fn metrics(&self) -> EpisodeMetrics {
        self.sim.metrics()
    }

    fn sim(&self) -> Option<&ClusterSim> {
        Some(&self.sim)
    }
}
