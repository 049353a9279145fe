//! Queue-ordering heuristics (which job next). Lower key = scheduled first.
//!
//! s = submit time, r = requested time, n = processors, w = current wait, a = actual run
//! time (known to the simulator, never to a real scheduler: only `Clairvoyant` reads it).

use crate::error::SimError;
use crate::sim::ClusterSim;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Fcfs,
    /// Shortest requested time first (ties: earlier submit).
    Sjf,
    /// Fewest processors first (ties: earlier submit).
    Smallest,
    /// `log10(r) * n + 870 * log10(s)` (Carastan-Santos & de Camargo).
    F1,
    /// `-(w / r)^3 * n`.
    Wfp3,
    /// `-w / (log2(n) * r)`.
    Unicep,
    /// Shortest actual run time first (ties: earlier submit). No scheduler can run it: it
    /// bounds what better run-time estimates could gain over SJF. Not in `ALL`, the rules
    /// that policies are trained against and judged by.
    Clairvoyant,
}

impl Priority {
    pub const ALL: [Priority; 6] =
        [Priority::Fcfs, Priority::Sjf, Priority::Smallest, Priority::F1, Priority::Wfp3, Priority::Unicep];

    pub fn parse(name: &str) -> Result<Self, SimError> {
        Ok(match name {
            "fcfs" => Self::Fcfs,
            "sjf" => Self::Sjf,
            "smallest" => Self::Smallest,
            "f1" => Self::F1,
            "wfp3" => Self::Wfp3,
            "unicep" => Self::Unicep,
            "clairvoyant" => Self::Clairvoyant,
            other => {
                return Err(SimError::InvalidConfig(format!(
                    "unknown policy {other:?}; choose fcfs, sjf, smallest, f1, wfp3, unicep \
                     or clairvoyant"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Fcfs => "fcfs",
            Self::Sjf => "sjf",
            Self::Smallest => "smallest",
            Self::F1 => "f1",
            Self::Wfp3 => "wfp3",
            Self::Unicep => "unicep",
            Self::Clairvoyant => "clairvoyant",
        }
    }

    /// The sort key of a job with submit `s`, requested time `r`, processors `n`, wait `w`
    /// and actual run time `a`.
    pub fn key(self, s: i64, r: i64, n: i64, w: i64, a: i64) -> SortKey {
        match self {
            Self::Clairvoyant => SortKey::Pair(a, s),
            Self::Fcfs => SortKey::Pair(s, 0),
            Self::Sjf => SortKey::Pair(r, s),
            Self::Smallest => SortKey::Pair(n, s),
            Self::F1 => {
                let lr = if r > 0 { (r as f64).log10() } else { 0.1f64.log10() };
                let ls = if s > 0 { (s as f64).log10() } else { 0.1f64.log10() };
                SortKey::Real(lr * n as f64 + 870.0 * ls)
            }
            Self::Wfp3 => SortKey::Real(-(w as f64 / r as f64).powf(3.0) * n as f64),
            Self::Unicep => {
                SortKey::Real(-(w as f64 + 1e-15) / ((n as f64 + 1e-15).log2() * r as f64))
            }
        }
    }

    /// The sort key of the simulation's job `j` now.
    pub fn job_key(self, sim: &ClusterSim, j: usize) -> SortKey {
        let job = &sim.jobs[j];
        let wait = sim.now as i64 - job.submit as i64;
        self.key(job.submit as i64, job.requested_runtime as i64, job.cores as i64, wait,
                 job.runtime as i64)
    }
}

/// A heuristic's key: integer pairs compare lexicographically, reals numerically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortKey {
    Pair(i64, i64),
    Real(f64),
}

impl SortKey {
    pub fn order(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (SortKey::Pair(a, b), SortKey::Pair(c, d)) => (a, b).cmp(&(c, d)),
            (SortKey::Real(a), SortKey::Real(b)) => a.total_cmp(b),
            _ => unreachable!("keys of one policy share a variant"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clairvoyant_orders_by_actual_run_time_and_is_no_baseline() {
        let c = Priority::parse("clairvoyant").unwrap();
        assert_eq!(c.name(), "clairvoyant");
        assert!(!Priority::ALL.contains(&c));
        // Two jobs asking for the same time; the later one actually runs shorter.
        let (early, late) = ((0, 3_600, 4, 50, 3_000), (10, 3_600, 4, 40, 60));
        let key = |p: Priority, (s, r, n, w, a): (i64, i64, i64, i64, i64)| p.key(s, r, n, w, a);
        assert_eq!(key(c, late).order(&key(c, early)), std::cmp::Ordering::Less);
        assert_eq!(key(Priority::Sjf, early).order(&key(Priority::Sjf, late)),
                   std::cmp::Ordering::Less);
    }
}
