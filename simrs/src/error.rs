//! Simulation errors are values (nexosim style): the binding layer maps each variant to a
//! specific Python exception instead of panicking or passing formatted strings around.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// A configuration value is out of its allowed range.
    InvalidConfig(String),
    /// The action names a host that does not exist or cannot hold the current job.
    InvalidAction { action: usize, reason: &'static str },
    /// `step` was called on an episode that already ended; call `reset` first.
    EpisodeOver,
    /// A host would exceed its capacity: a simulator bug, never a user error.
    CapacityViolation { host: usize },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::InvalidConfig(msg) => write!(f, "invalid configuration: {msg}"),
            SimError::InvalidAction { action, reason } => {
                write!(f, "invalid action {action}: {reason}")
            }
            SimError::EpisodeOver => write!(f, "episode is over; call reset() first"),
            SimError::CapacityViolation { host } => {
                write!(f, "host {host} would exceed its capacity")
            }
        }
    }
}

impl std::error::Error for SimError {}

pub type SimResult<T> = Result<T, SimError>;
