//! Textbook heuristic replay: at every event time the queue is ordered by a priority rule
//! (true waits), jobs start while the head fits (placed by a placement rule), and when the
//! head does not fit, backfilling may start others. Utilisation is over the makespan.

use crate::heuristics::backfill::{backfill, Backfill};
use crate::metrics::EpisodeMetrics;
use crate::heuristics::placement::Placement;
use crate::heuristics::policy::{Priority, SortKey};
use crate::sim::ClusterSim;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    pub priority: Priority,
    pub placement: Placement,
    pub backfill: Backfill,
}

fn key(sim: &ClusterSim, priority: Priority, j: usize) -> SortKey {
    priority.job_key(sim, j)
}

fn static_key(priority: Priority) -> bool {
    !matches!(priority, Priority::Wfp3 | Priority::Unicep)
}

/// Orders the queue; `sorted_prefix` jobs are already in order (static keys).
fn order_queue(sim: &mut ClusterSim, priority: Priority, sorted_prefix: usize) {
    let mut queue = std::mem::take(&mut sim.queue);
    if static_key(priority) {
        // New arrivals (the tail) are inserted into the sorted prefix by binary search.
        let tail = queue.split_off(sorted_prefix.min(queue.len()));
        for j in tail {
            let k = key(sim, priority, j);
            let at = queue.partition_point(|&q| key(sim, priority, q).order(&k).is_le());
            queue.insert(at, j);
        }
    } else {
        let mut keyed: Vec<(SortKey, usize)> = queue.iter().map(|&j| (key(sim, priority, j), j)).collect();
        keyed.sort_by(|a, b| a.0.order(&b.0));
        queue = keyed.into_iter().map(|(_, j)| j).collect();
    }
    sim.queue = queue;
}

/// Schedules the loaded episode to the end and returns its metrics.
pub fn replay(sim: &mut ClusterSim, cfg: ReplayConfig) -> EpisodeMetrics {
    let mut sorted = 0;
    sim.advance();
    loop {
        order_queue(sim, cfg.priority, sorted);
        while let Some(&head) = sim.queue.first() {
            match cfg.placement.choose(&sim.cluster, &sim.jobs[head], sim.now) {
                Some(host) => {
                    sim.start_from_queue(0, host).expect("placement chose a fitting host");
                }
                None => {
                    backfill(sim, head, cfg.backfill, cfg.placement);
                    break;
                }
            }
        }
        sorted = sim.queue.len();
        if sim.all_started() || sim.advance().is_none() {
            break;
        }
    }
    sim.drain();
    sim.metrics()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, Host};
    use crate::job::Job;

    fn sim(jobs: Vec<Job>, cores: u32) -> ClusterSim {
        ClusterSim::new(Cluster::new(vec![Host::new(cores, 1 << 20)]), jobs)
    }

    fn cfg(priority: Priority, backfill: Backfill) -> ReplayConfig {
        ReplayConfig { priority, placement: Placement::FirstFit, backfill }
    }

    #[test]
    fn easy_backfills_without_delaying_the_head() {
        // 4 cores. Job 0 takes 3 cores for 100 s; job 1 needs 4 (waits until 100);
        // job 2 (1 core, 50 s) can run in the hole; job 3 (1 core, 500 s) would delay job 1.
        let jobs = vec![
            Job::new(0, 0, 100, 100, 3, 0),
            Job::new(1, 1, 10, 10, 4, 0),
            Job::new(2, 2, 50, 50, 1, 0),
            Job::new(3, 3, 500, 500, 1, 0),
        ];
        let mut s = sim(jobs.clone(), 4);
        replay(&mut s, cfg(Priority::Fcfs, Backfill::Easy));
        let starts: Vec<u64> = s.jobs.iter().map(|j| j.start.unwrap()).collect();
        assert_eq!(starts, vec![0, 100, 2, 110]);
        let mut none = sim(jobs, 4);
        replay(&mut none, cfg(Priority::Fcfs, Backfill::None));
        let starts: Vec<u64> = none.jobs.iter().map(|j| j.start.unwrap()).collect();
        assert_eq!(starts, vec![0, 100, 110, 110]);
    }

    #[test]
    fn sjf_orders_by_requested_time() {
        let jobs = vec![
            Job::new(0, 0, 100, 100, 4, 0),
            Job::new(1, 1, 300, 300, 4, 0),
            Job::new(2, 2, 10, 10, 4, 0),
        ];
        let mut s = sim(jobs, 4);
        replay(&mut s, cfg(Priority::Sjf, Backfill::None));
        assert_eq!(s.start_order, vec![0, 2, 1]);
        assert!(s.jobs.iter().all(|j| j.end.is_some()));
    }
}
