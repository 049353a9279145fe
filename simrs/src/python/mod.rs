//! The PyO3 binding layer, split as tokenizers splits its bindings: errors, buffers, envs,
//! nets, pick and replay. Argument conversion, buffer access and error mapping only: every rule lives
//! in the pure-Rust core. Observations, masks, rewards and dones are written straight into
//! caller-owned NumPy arrays through the buffer protocol (no copies, no per-element Python
//! objects), and stepping releases the GIL.

mod buffers;
mod envs;
mod errors;
mod nets;
mod pick;
mod replay;

use pyo3::prelude::*;

use envs::{Env, VecEnv};
use errors::{ConfigError, EpisodeOverError, InvalidActionError, InvariantError, SimrsError, TraceError};
use nets::{EntityLayers, PlaceHostLayers, PlaceNet};
use pick::{pick_sample, PickBatch};
use replay::{load_trace, replay_compat, replay_trace, Trace};

#[pymodule]
fn _simrs(py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add_class::<Env>()?;
    m.add_class::<VecEnv>()?;
    m.add_class::<Trace>()?;
    m.add_class::<PlaceNet>()?;
    m.add_class::<PlaceHostLayers>()?;
    m.add_class::<EntityLayers>()?;
    m.add_class::<PickBatch>()?;
    m.add_function(wrap_pyfunction!(pick_sample, m)?)?;
    m.add_function(wrap_pyfunction!(load_trace, m)?)?;
    m.add_function(wrap_pyfunction!(replay_compat, m)?)?;
    m.add_function(wrap_pyfunction!(replay_trace, m)?)?;
    m.add("SimrsError", py.get_type::<SimrsError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InvalidActionError", py.get_type::<InvalidActionError>())?;
    m.add("EpisodeOverError", py.get_type::<EpisodeOverError>())?;
    m.add("InvariantError", py.get_type::<InvariantError>())?;
    m.add("TraceError", py.get_type::<TraceError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
