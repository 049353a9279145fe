//! Backfilling: starting later jobs early while the chosen (head) job waits, without delaying
//! it. Reservations reason about the pool of cores, which is exact for identical single-core
//! nodes (SWF traces) and conservative enough for heterogeneous hosts.

use crate::error::SimError;
use crate::heuristics::placement::Placement;
use crate::sim::ClusterSim;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backfill {
    None,
    /// RLScheduler's rule: a job may start now if it fits and `now + requested < shadow`.
    Shadow,
    /// Full EASY: that, or the job uses only cores the head job will not need at its shadow
    /// time (the "extra" cores).
    Easy,
}

impl Backfill {
    pub fn parse(name: &str) -> Result<Self, SimError> {
        Ok(match name {
            "none" => Self::None,
            "shadow" => Self::Shadow,
            "easy" => Self::Easy,
            other => {
                return Err(SimError::InvalidConfig(format!(
                    "unknown backfill {other:?}; choose none, shadow or easy"
                )))
            }
        })
    }
}

/// The head job's reservation: when enough cores will be free (by requested times) and how
/// many cores will be spare then.
pub fn reservation(sim: &ClusterSim, head: usize) -> (u64, u64) {
    let need = sim.jobs[head].cores as u64;
    let mut free = sim.free_cores();
    if free >= need {
        return (sim.now, free - need);
    }
    let mut ends: Vec<(u64, u64)> = sim
        .running_jobs
        .iter()
        .map(|&r| {
            let j = &sim.jobs[r];
            // A job past its estimate is assumed to end now.
            ((j.start.unwrap() + j.requested_runtime).max(sim.now), j.cores as u64)
        })
        .collect();
    ends.sort_unstable();
    for (end, cores) in ends {
        free += cores;
        if free >= need {
            return (end, free - need);
        }
    }
    (u64::MAX, 0)
}

/// Starts every queued job (other than `head`, in queue order) that the rule allows now.
/// Returns how many were started.
pub fn backfill(sim: &mut ClusterSim, head: usize, rule: Backfill, placement: Placement) -> usize {
    if rule == Backfill::None || sim.queue.len() < 2 {
        return 0;
    }
    let (shadow, mut extra) = reservation(sim, head);
    let mut started = 0;
    let mut pos = 0;
    while pos < sim.queue.len() {
        let j = sim.queue[pos];
        if j == head {
            pos += 1;
            continue;
        }
        let job = &sim.jobs[j];
        let ends_in_time = match rule {
            Backfill::Shadow => sim.now + job.requested_runtime < shadow,
            _ => sim.now + job.requested_runtime <= shadow,
        };
        let uses_extra = rule == Backfill::Easy && (job.cores as u64) <= extra;
        if ends_in_time || uses_extra {
            if let Some(host) = placement.choose(&sim.cluster, job, sim.now) {
                if !ends_in_time {
                    extra -= job.cores as u64;
                }
                sim.start_from_queue(pos, host).expect("placement chose a fitting host");
                started += 1;
                continue; // the queue shifted left: `pos` now names the next job
            }
        }
        pos += 1;
    }
    started
}
