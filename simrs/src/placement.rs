//! Placement rules (which host runs a job that has been chosen).

use crate::cluster::Cluster;
use crate::error::SimError;
use crate::job::Job;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The lowest-numbered host that fits.
    FirstFit,
    /// The fitting host left with the fewest free cores (then least free memory).
    BestFit,
    /// The fitting host left with the most free cores: spreads load.
    WorstFit,
    /// A fitting host chosen by a hash of the time and job: deterministic, unbiased.
    Random,
}

impl Placement {
    pub fn parse(name: &str) -> Result<Self, SimError> {
        Ok(match name {
            "first_fit" => Self::FirstFit,
            "best_fit" => Self::BestFit,
            "worst_fit" => Self::WorstFit,
            "random" => Self::Random,
            other => {
                return Err(SimError::InvalidConfig(format!(
                    "unknown placement {other:?}; choose first_fit, best_fit, worst_fit or random"
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
