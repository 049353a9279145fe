//! Placement rules (which host runs a job that has been chosen).

use crate::cluster::{Cluster, Host};
use crate::error::SimError;
use crate::job::Job;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The lowest-numbered host that fits.
    FirstFit,
    /// The fitting host left with the fewest free cores (then least free memory).
    BestFit,
    /// The fitting host left with the least free memory (then fewest free cores): best-fit
    /// for clusters where memory, not cores, fills a host.
    BestFitMem,
    /// The fitting host left with the most free cores: spreads load.
    WorstFit,
    /// A fitting host chosen by a hash of the time and job: deterministic, unbiased.
    Random,
    /// The fitting host whose free resources best match what the job asks for: Tetris's
    /// alignment score (Grandl et al., SIGCOMM 2014), the dot product of the job's cores and
    /// memory with the host's free cores and memory, each resource scaled by the cluster's
    /// largest host. A host rich in what the job needs wins, so jobs heavy in one resource
    /// go where that resource is plentiful.
    Tetris,
}

impl Placement {
    pub fn parse(name: &str) -> Result<Self, SimError> {
        Ok(match name {
            "first_fit" => Self::FirstFit,
            "best_fit" => Self::BestFit,
            "best_fit_mem" => Self::BestFitMem,
            "worst_fit" => Self::WorstFit,
            "random" => Self::Random,
            "tetris" => Self::Tetris,
            other => {
                return Err(SimError::InvalidConfig(format!(
                    "unknown placement {other:?}; choose first_fit, best_fit, best_fit_mem, \
                     worst_fit, random or tetris"
                )))
            }
        })
    }

    pub fn choose(self, cluster: &Cluster, job: &Job, now: u64) -> Option<usize> {
        let fitting = cluster.hosts.iter().enumerate().filter(|(_, h)| h.fits(job));
        match self {
            Self::FirstFit => fitting.map(|(i, _)| i).next(),
            Self::BestFit => fitting
                .min_by_key(|(i, h)| (h.free_cores() - job.cores, h.free_mem_mb() - job.mem_mb, *i))
                .map(|(i, _)| i),
            Self::BestFitMem => fitting
                .min_by_key(|(i, h)| (h.free_mem_mb() - job.mem_mb, h.free_cores() - job.cores, *i))
                .map(|(i, _)| i),
            Self::WorstFit => fitting
                .max_by_key(|(i, h)| (h.free_cores(), h.free_mem_mb(), std::cmp::Reverse(*i)))
                .map(|(i, _)| i),
            Self::Random => {
                let candidates: Vec<usize> = fitting.map(|(i, _)| i).collect();
                if candidates.is_empty() {
                    return None;
                }
                let h = splitmix64(now ^ (job.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                Some(candidates[(h % candidates.len() as u64) as usize])
            }
            Self::Tetris => {
                let (c, m) = (cluster.inv_max_cores as f64, cluster.inv_max_mem as f64);
                let alignment = |h: &Host| {
                    job.cores as f64 * h.free_cores() as f64 * c * c
                        + job.mem_mb as f64 * h.free_mem_mb() as f64 * m * m
                };
                // The best score; among equal ones the lowest-numbered host.
                fitting
                    .max_by(|(i, a), (j, b)| alignment(a).total_cmp(&alignment(b)).then(j.cmp(i)))
                    .map(|(i, _)| i)
            }
        }
    }
}

/// A fast, well-mixed 64-bit hash (SplitMix64's finaliser).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three hosts after some placements: host 0 is short of cores, host 1 of memory, host 2
    /// empty. A 2-core, 8 GB job fits on all three.
    fn cluster() -> Cluster {
        let mut c = Cluster::new(vec![Host::new(16, 65_536), Host::new(16, 65_536),
                                      Host::new(32, 131_072)]);
        c.allocate(0, &Job::new(0, 0, 10, 10, 12, 8_192)).unwrap();
        c.allocate(1, &Job::new(1, 0, 10, 10, 2, 49_152)).unwrap();
        c
    }

    #[test]
    fn each_rule_chooses_its_host() {
        let c = cluster();
        let job = Job::new(2, 0, 10, 10, 2, 8_192);
        assert_eq!(Placement::FirstFit.choose(&c, &job, 0), Some(0));
        assert_eq!(Placement::BestFit.choose(&c, &job, 0), Some(0)); // fewest cores left
        assert_eq!(Placement::BestFitMem.choose(&c, &job, 0), Some(1)); // least memory left
        assert_eq!(Placement::WorstFit.choose(&c, &job, 0), Some(2));
        assert_eq!(Placement::Tetris.choose(&c, &job, 0), Some(2)); // most of both free
        let random = Placement::Random.choose(&c, &job, 0).unwrap();
        assert!(random < 3);
        let too_big = Job::new(3, 0, 10, 10, 2, 70_000);
        assert_eq!(Placement::BestFitMem.choose(&c, &too_big, 0), Some(2)); // the only fit
        assert_eq!(Placement::parse("best_fit_mem"), Ok(Placement::BestFitMem));
        assert_eq!(Placement::parse("tetris"), Ok(Placement::Tetris));
        assert!(Placement::parse("tightest").is_err());
    }

    #[test]
    fn tetris_sends_each_job_where_what_it_needs_is_free() {
        // Host 0 has cores free but little memory; host 1 the other way round.
        let mut c = Cluster::new(vec![Host::new(32, 131_072), Host::new(32, 131_072)]);
        c.allocate(0, &Job::new(0, 0, 10, 10, 2, 98_304)).unwrap();
        c.allocate(1, &Job::new(1, 0, 10, 10, 24, 8_192)).unwrap();
        let memory_heavy = Job::new(2, 0, 10, 10, 1, 24_576);
        let core_heavy = Job::new(3, 0, 10, 10, 8, 1_024);
        assert_eq!(Placement::WorstFit.choose(&c, &memory_heavy, 0), Some(0)); // most cores
        assert_eq!(Placement::Tetris.choose(&c, &memory_heavy, 0), Some(1));
        assert_eq!(Placement::Tetris.choose(&c, &core_heavy, 0), Some(0));
        // Equal scores: the lowest-numbered host.
        let empty = Cluster::new(vec![Host::new(8, 8_192), Host::new(8, 8_192)]);
        assert_eq!(Placement::Tetris.choose(&empty, &core_heavy, 0), Some(0));
    }
}
