//! Reward functions, chosen per environment.

use crate::error::SimError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardKind {
    /// Minus the job-hours spent waiting since the previous decision (dense).
    Wait,
    /// Minus the bounded slowdown of the jobs started by this step, over the episode's jobs
    /// (dense; sums to minus the average bounded slowdown).
    BsldDense,
    /// Minus the episode's average bounded slowdown, at the end only (RLScheduler).
    BsldTerminal,
    /// The episode's utilisation over the makespan, at the end only.
    Utilization,
    /// Minus the variance of host core utilisation after each decision.
    LoadBalance,
}

impl RewardKind {
    pub fn parse(name: &str) -> Result<Self, SimError> {
        Ok(match name {
            "wait" => Self::Wait,
            "bsld" | "bsld_dense" => Self::BsldDense,
            "bsld_terminal" => Self::BsldTerminal,
            "utilization" => Self::Utilization,
            "load_balance" => Self::LoadBalance,
            other => {
                return Err(SimError::InvalidConfig(format!(
                    "unknown reward {other:?}; choose wait, bsld_dense, bsld_terminal, \
                     utilization or load_balance"
                )))
            }
        })
    }
}
