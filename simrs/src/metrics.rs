//! Per-episode figures, computed from the jobs' start and end times.

use crate::cluster::Cluster;
use crate::job::Job;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpisodeMetrics {
    /// Jobs in the episode.
    pub jobs: usize,
    /// Jobs that finished.
    pub completed: usize,
    pub completion_rate: f64,
    pub mean_wait_s: f64,
    pub mean_turnaround_s: f64,
    /// Average of `max((wait + run) / max(run, 10), 1)` over started jobs.
    pub mean_bounded_slowdown: f64,
    pub p95_bounded_slowdown: f64,
    /// First submission to last completion.
    pub makespan_s: f64,
    /// Busy core-seconds over capacity core-seconds across the makespan.
    pub utilization: f64,
    /// RLScheduler's variant: `sum(run * cores) / ((last start - first submit) * capacity)`.
    pub utilization_rlscheduler: f64,
    /// Variance across hosts of each host's utilisation over the makespan.
    pub load_imbalance: f64,
}

/// The `q`-quantile by nearest rank (q in [0, 1]) of unsorted values.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
    values[rank.min(values.len()) - 1]
}

pub fn episode_metrics(jobs: &[Job], cluster: &Cluster) -> EpisodeMetrics {
    let started: Vec<&Job> = jobs.iter().filter(|j| j.start.is_some()).collect();
    let n = started.len().max(1) as f64;
    let mut bslds: Vec<f64> = started.iter().filter_map(|j| j.bounded_slowdown()).collect();
    let mean_bsld = bslds.iter().sum::<f64>() / n;
    let p95 = quantile(&mut bslds, 0.95);
    let mean_wait = started.iter().map(|j| j.wait().unwrap_or(0) as f64).sum::<f64>() / n;
    let completed: Vec<&Job> = jobs.iter().filter(|j| j.end.is_some()).collect();
    let mean_turnaround = completed
        .iter()
        .map(|j| (j.end.unwrap() - j.submit) as f64)
        .sum::<f64>()
        / completed.len().max(1) as f64;
    let first_submit = jobs.iter().map(|j| j.submit).min().unwrap_or(0);
    let last_end = jobs.iter().filter_map(|j| j.end).max().unwrap_or(first_submit);
    let makespan = (last_end - first_submit) as f64;
    let mut host_busy = vec![0.0f64; cluster.len()];
    for j in &completed {
        if let Some(h) = j.host {
            host_busy[h] += j.cores as f64 * j.runtime as f64;
        }
    }
    let span = makespan.max(1.0);
    let utilization = host_busy.iter().sum::<f64>() / (cluster.total_cores.max(1) as f64 * span);
    let last_start = started.iter().filter_map(|j| j.start).max().unwrap_or(first_submit);
    let work: f64 = started.iter().map(|j| j.cores as f64 * j.runtime as f64).sum();
    let start_span = ((last_start - first_submit) as f64).max(1.0);
    let utilization_rlscheduler = work / (start_span * cluster.total_cores.max(1) as f64);
    let host_util: Vec<f64> = host_busy
        .iter()
        .zip(&cluster.hosts)
        .map(|(b, h)| b / (h.cores.max(1) as f64 * span))
        .collect();
    let mean_util = host_util.iter().sum::<f64>() / host_util.len().max(1) as f64;
    let imbalance = host_util.iter().map(|u| (u - mean_util).powi(2)).sum::<f64>()
        / host_util.len().max(1) as f64;
    EpisodeMetrics {
        jobs: jobs.len(),
        completed: completed.len(),
        completion_rate: completed.len() as f64 / jobs.len().max(1) as f64,
        mean_wait_s: mean_wait,
        mean_turnaround_s: mean_turnaround,
        mean_bounded_slowdown: mean_bsld,
        p95_bounded_slowdown: p95,
        makespan_s: makespan,
        utilization,
        utilization_rlscheduler,
        load_imbalance: imbalance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantile() {
        let mut v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.95), 19.0);
        assert_eq!(quantile(&mut [3.0], 0.95), 3.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
    }
}
