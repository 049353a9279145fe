//! Simulator errors as Python exceptions: one exception class per `SimError` variant (and
//! one for unreadable traces), all under `simrs.SimrsError`.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::error::SimError;
use crate::swf::SwfError;

create_exception!(_simrs, SimrsError, PyValueError, "Base class of every simrs error.");
create_exception!(_simrs, ConfigError, SimrsError, "A configuration value is invalid.");
create_exception!(_simrs, InvalidActionError, SimrsError, "The action is not allowed now.");
create_exception!(_simrs, EpisodeOverError, SimrsError, "step() after the episode ended.");
create_exception!(_simrs, InvariantError, SimrsError, "A simulator invariant broke (a bug).");
create_exception!(_simrs, TraceError, SimrsError, "An SWF trace cannot be read.");

pub(crate) fn to_py(err: SimError) -> PyErr {
    let msg = err.to_string();
    match err {
        SimError::InvalidConfig(_) => ConfigError::new_err(msg),
        SimError::InvalidAction { .. } => InvalidActionError::new_err(msg),
        SimError::EpisodeOver => EpisodeOverError::new_err(msg),
        SimError::CapacityViolation { .. } => InvariantError::new_err(msg),
    }
}

pub(crate) fn trace_err(err: SwfError) -> PyErr {
    TraceError::new_err(err.to_string())
}
