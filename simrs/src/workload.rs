//! Jobs and the seeded synthetic workload generator. Its configuration surface mirrors the LSF
//! scheduler seed (hosts, episode length, burst size and the resource ranges); arrivals come in
//! EDA-like bursts and run times are heavy-tailed (log-normal).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

use std::sync::Arc;

use crate::cluster::Host;
use crate::job::Job;
use crate::swf::Trace;
use crate::error::{SimError, SimResult};
use crate::event::Time;

/// Parameters of the synthetic generator (defaults from the LSF scheduler seed).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    pub num_hosts: usize,
    /// Jobs per episode.
    pub episode_length: usize,
    /// Largest number of jobs submitted at one instant (a burst).
    pub max_jobs_per_step: usize,
    pub host_cores: (u32, u32),
    pub host_mem_mb: (u64, u64),
    pub job_cores: (u32, u32),
    pub job_mem_mb: (u64, u64),
    /// Mean gap between submission instants, in seconds.
    pub mean_interarrival_s: f64,
    /// Probability that a submission instant is a burst of several jobs.
    pub burst_prob: f64,
    /// Median job run time in seconds; the log-normal's sigma sets the tail.
    pub runtime_median_s: f64,
    pub runtime_sigma: f64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            num_hosts: 50,
            episode_length: 200,
            max_jobs_per_step: 50,
            host_cores: (16, 32),
            host_mem_mb: (65_536, 131_072),
            job_cores: (1, 4),
            job_mem_mb: (512, 4_096),
            mean_interarrival_s: 60.0,
            burst_prob: 0.2,
            runtime_median_s: 600.0,
            runtime_sigma: 1.0,
        }
    }
}

fn check_range<T: PartialOrd + Copy + Default + std::fmt::Display>(
    name: &str,
    (lo, hi): (T, T),
) -> SimResult<()> {
    if lo <= T::default() || lo > hi {
        return Err(SimError::InvalidConfig(format!(
            "{name} must satisfy 0 < low <= high, got ({lo}, {hi})"
        )));
    }
    Ok(())
}

impl WorkloadConfig {
    pub fn validate(&self) -> SimResult<()> {
        if self.num_hosts == 0 {
            return Err(SimError::InvalidConfig("num_hosts must be at least 1".into()));
        }
        if self.episode_length == 0 {
            return Err(SimError::InvalidConfig("episode_length must be at least 1".into()));
        }
        if self.max_jobs_per_step == 0 {
            return Err(SimError::InvalidConfig("max_jobs_per_step must be at least 1".into()));
        }
        check_range("host_cores", self.host_cores)?;
        check_range("host_mem_mb", self.host_mem_mb)?;
        check_range("job_cores", self.job_cores)?;
        check_range("job_mem_mb", self.job_mem_mb)?;
        // Every job must fit on the smallest possible host, or it could wait forever.
        if self.job_cores.1 > self.host_cores.0 || self.job_mem_mb.1 > self.host_mem_mb.0 {
            return Err(SimError::InvalidConfig(
                "the largest job must fit on the smallest host".into(),
            ));
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.mean_interarrival_s) || !positive(self.runtime_median_s) {
            return Err(SimError::InvalidConfig(
                "mean_interarrival_s and runtime_median_s must be positive".into(),
            ));
        }
        if !(self.runtime_sigma.is_finite() && self.runtime_sigma >= 0.0) {
            return Err(SimError::InvalidConfig("runtime_sigma must be >= 0".into()));
        }
        if !(0.0..=1.0).contains(&self.burst_prob) {
            return Err(SimError::InvalidConfig("burst_prob must be within [0, 1]".into()));
        }
        Ok(())
    }

    /// Heterogeneous hosts drawn uniformly from the configured ranges.
    pub fn hosts(&self, rng: &mut ChaCha8Rng) -> Vec<Host> {
        (0..self.num_hosts)
            .map(|_| {
                let cores = rng.gen_range(self.host_cores.0..=self.host_cores.1);
                let mem = rng.gen_range(self.host_mem_mb.0..=self.host_mem_mb.1);
                Host::new(cores, mem)
            })
            .collect()
    }

    /// `episode_length` jobs in submission order.
    pub fn jobs(&self, rng: &mut ChaCha8Rng) -> Vec<Job> {
        let gap = Exp::new(1.0 / self.mean_interarrival_s).expect("validated rate");
        let runtime =
            LogNormal::new(self.runtime_median_s.ln(), self.runtime_sigma).expect("validated");
        let mut jobs = Vec::with_capacity(self.episode_length);
        let mut now: f64 = 0.0;
        while jobs.len() < self.episode_length {
            let burst = if self.max_jobs_per_step > 1 && rng.gen_bool(self.burst_prob) {
                rng.gen_range(2..=self.max_jobs_per_step)
            } else {
                1
            };
            for _ in 0..burst.min(self.episode_length - jobs.len()) {
                let run = runtime.sample(rng).clamp(10.0, 86_400.0) as Time;
                // Users over-estimate: requested time is the run time padded by up to 2x.
                let requested = (run as f64 * rng.gen_range(1.0..2.0)).ceil() as Time;
                let cores = rng.gen_range(self.job_cores.0..=self.job_cores.1);
                let mem = rng.gen_range(self.job_mem_mb.0..=self.job_mem_mb.1);
                jobs.push(Job::new(jobs.len(), now as Time, run, requested, cores, mem));
            }
            now += gap.sample(rng);
        }
        jobs
    }
}

/// A trace replayed in windows: identical nodes with `cores_per_node` cores each, and an
/// episode of `episode_length` consecutive jobs starting at a seeded random index.
#[derive(Debug, Clone)]
pub struct TraceWorkload {
    pub jobs: Vec<Job>,
    pub nodes: usize,
    pub cores_per_node: u32,
    pub episode_length: usize,
}

impl TraceWorkload {
    pub fn from_trace(trace: &Trace, episode_length: usize) -> SimResult<Self> {
        let nodes = trace.nodes().max(1) as usize;
        let cores_per_node = (trace.capacity() as f64 / nodes as f64).ceil().max(1.0) as u32;
        let capacity = nodes as u64 * cores_per_node as u64;
        let jobs: Vec<Job> = trace
            .jobs
            .iter()
            .filter(|j| (j.procs as u64) <= capacity)
            .enumerate()
            .map(|(i, j)| {
                let mut job = Job::new(i, j.submit.max(0) as Time, j.run as Time,
                                       j.requested_time.max(1) as Time, j.procs as u32, 0);
                job.user = j.user;
                job.group = j.group;
                job.executable = j.executable;
                job
            })
            .collect();
        if episode_length == 0 || episode_length > jobs.len() {
            return Err(SimError::InvalidConfig(format!(
                "episode_length must be within 1..={} for this trace", jobs.len()
            )));
        }
        Ok(Self { jobs, nodes, cores_per_node, episode_length })
    }
}

/// Where an episode's hosts and jobs come from.
#[derive(Debug, Clone)]
pub enum WorkloadSource {
    Synthetic(WorkloadConfig),
    /// Shared between environments: a trace is loaded once.
    Trace(Arc<TraceWorkload>),
}

impl WorkloadSource {
    pub fn num_hosts(&self) -> usize {
        match self {
            Self::Synthetic(c) => c.num_hosts,
            Self::Trace(t) => t.nodes,
        }
    }

    pub fn episode_length(&self) -> usize {
        match self {
            Self::Synthetic(c) => c.episode_length,
            Self::Trace(t) => t.episode_length,
        }
    }

    /// The hosts and jobs of the episode drawn from `rng`.
    pub fn episode(&self, rng: &mut ChaCha8Rng) -> (Vec<Host>, Vec<Job>) {
        match self {
            Self::Synthetic(c) => {
                let hosts = c.hosts(rng);
                (hosts, c.jobs(rng))
            }
            Self::Trace(t) => {
                let hosts = vec![Host::new(t.cores_per_node, 0); t.nodes];
                let last_start = t.jobs.len() - t.episode_length;
                let start = rng.gen_range(0..=last_start);
                let first_submit = t.jobs[start].submit;
                let jobs = t.jobs[start..start + t.episode_length]
                    .iter()
                    .map(|j| Job { submit: j.submit.saturating_sub(first_submit), ..j.clone() })
                    .collect();
                (hosts, jobs)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn same_seed_same_workload() {
        let cfg = WorkloadConfig::default();
        let a = cfg.jobs(&mut ChaCha8Rng::seed_from_u64(42));
        let b = cfg.jobs(&mut ChaCha8Rng::seed_from_u64(42));
        let c = cfg.jobs(&mut ChaCha8Rng::seed_from_u64(43));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), cfg.episode_length);
        assert!(a.windows(2).all(|w| w[0].submit <= w[1].submit));
        assert!(a.iter().all(|j| (1..=4).contains(&j.cores) && j.runtime >= 10));
    }

    #[test]
    fn rejects_jobs_larger_than_hosts() {
        let cfg = WorkloadConfig { job_cores: (1, 64), ..Default::default() };
        assert!(matches!(cfg.validate(), Err(SimError::InvalidConfig(_))));
    }
}
