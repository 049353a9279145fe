//! The PyO3 binding layer: argument conversion, buffer filling and error mapping only. Every
//! rule lives in the pure-Rust core. Observations and masks are written straight into
//! caller-owned NumPy arrays through the buffer protocol (no per-element Python objects), and
//! batch stepping releases the GIL.

use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::SimError;
use crate::place_env::{EpisodeMetrics, Heuristic, PlaceEnv as CorePlaceEnv};
use crate::vec_env::{FinishedEpisode, VecPlaceEnv as CoreVecPlaceEnv};
use crate::workload::WorkloadConfig;

create_exception!(_simrs, SimrsError, PyValueError, "Base class of every simrs error.");
create_exception!(_simrs, ConfigError, SimrsError, "A configuration value is invalid.");
create_exception!(_simrs, InvalidActionError, SimrsError, "The action is not allowed now.");
create_exception!(_simrs, EpisodeOverError, SimrsError, "step() after the episode ended.");
create_exception!(_simrs, InvariantError, SimrsError, "A simulator invariant broke (a bug).");

fn to_py(err: SimError) -> PyErr {
    let msg = err.to_string();
    match err {
        SimError::InvalidConfig(_) => ConfigError::new_err(msg),
        SimError::InvalidAction { .. } => InvalidActionError::new_err(msg),
        SimError::EpisodeOver => EpisodeOverError::new_err(msg),
        SimError::CapacityViolation { .. } => InvariantError::new_err(msg),
    }
}

fn pair<T: for<'a> FromPyObject<'a>>(value: &PyAny, key: &str) -> PyResult<(T, T)> {
    value
        .extract::<(T, T)>()
        .map_err(|_| ConfigError::new_err(format!("{key} must be a pair (low, high)")))
}

fn scalar<T: for<'a> FromPyObject<'a>>(value: &PyAny, key: &str, what: &str) -> PyResult<T> {
    value.extract::<T>().map_err(|_| ConfigError::new_err(format!("{key} must be {what}")))
}

/// Builds a WorkloadConfig from a dict, naming any unknown key instead of ignoring it.
fn workload_config(config: Option<&PyDict>) -> PyResult<WorkloadConfig> {
    let mut cfg = WorkloadConfig::default();
    if let Some(d) = config {
        for (k, v) in d.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                "num_hosts" => cfg.num_hosts = scalar(v, &key, "a positive integer")?,
                "episode_length" => cfg.episode_length = scalar(v, &key, "a positive integer")?,
                "max_jobs_per_step" => {
                    cfg.max_jobs_per_step = scalar(v, &key, "a positive integer")?
                }
                "host_cores" => cfg.host_cores = pair(v, &key)?,
                "host_mem_mb" => cfg.host_mem_mb = pair(v, &key)?,
                "job_cores" => cfg.job_cores = pair(v, &key)?,
                "job_mem_mb" => cfg.job_mem_mb = pair(v, &key)?,
                "mean_interarrival_s" => cfg.mean_interarrival_s = scalar(v, &key, "a number")?,
                "burst_prob" => cfg.burst_prob = scalar(v, &key, "a number")?,
                "runtime_median_s" => cfg.runtime_median_s = scalar(v, &key, "a number")?,
                "runtime_sigma" => cfg.runtime_sigma = scalar(v, &key, "a number")?,
                other => {
                    return Err(ConfigError::new_err(format!(
                        "unknown workload option {other:?}"
                    )))
                }
            }
        }
    }
    cfg.validate().map_err(to_py)?;
    Ok(cfg)
}

fn metrics_dict(py: Python<'_>, m: &EpisodeMetrics) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    d.set_item("jobs", m.jobs)?;
    d.set_item("mean_wait_s", m.mean_wait_s)?;
    d.set_item("mean_bounded_slowdown", m.mean_bounded_slowdown)?;
    d.set_item("makespan_s", m.makespan_s)?;
    d.set_item("utilization", m.utilization)?;
    Ok(d.into())
}

fn write_f32(py: Python<'_>, buf: &PyAny, data: &[f32]) -> PyResult<()> {
    PyBuffer::<f32>::get(buf)?.copy_from_slice(py, data)
}

fn write_i8(py: Python<'_>, buf: &PyAny, data: &[i8]) -> PyResult<()> {
    PyBuffer::<i8>::get(buf)?.copy_from_slice(py, data)
}

/// One `place`-mode environment.
#[pyclass(module = "simrs._simrs")]
struct PlaceEnv {
    inner: CorePlaceEnv,
    obs: Vec<f32>,
    mask: Vec<i8>,
}

#[pymethods]
impl PlaceEnv {
    #[new]
    #[args(config = "None", seed = "0")]
    fn new(config: Option<&PyDict>, seed: u64) -> PyResult<Self> {
        let inner = CorePlaceEnv::new(workload_config(config)?, seed).map_err(to_py)?;
        let (d, h) = (inner.obs_dim(), inner.num_hosts());
        Ok(Self { inner, obs: vec![0.0; d], mask: vec![0; h] })
    }

    #[getter]
    fn num_hosts(&self) -> usize {
        self.inner.num_hosts()
    }

    #[getter]
    fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }

    #[getter]
    fn now(&self) -> u64 {
        self.inner.now()
    }

    #[getter]
    fn done(&self) -> bool {
        self.inner.is_done()
    }

    fn reset(&mut self, seed: u64) {
        self.inner.reset(seed);
    }

    /// Places the current job on `host`; returns (reward, done).
    fn step(&mut self, host: usize) -> PyResult<(f64, bool)> {
        let r = self.inner.step(host).map_err(to_py)?;
        Ok((r, self.inner.is_done()))
    }

    fn observe_into(&mut self, py: Python<'_>, out: &PyAny) -> PyResult<()> {
        self.inner.observe(&mut self.obs);
        write_f32(py, out, &self.obs)
    }

    fn mask_into(&mut self, py: Python<'_>, out: &PyAny) -> PyResult<()> {
        self.inner.action_mask(&mut self.mask);
        write_i8(py, out, &self.mask)
    }

    /// The host a named heuristic would choose now, or None when the episode is over.
    fn heuristic_action(&self, name: &str) -> PyResult<Option<usize>> {
        let rule = Heuristic::parse(name).ok_or_else(|| {
            ConfigError::new_err(format!(
                "unknown heuristic {name:?}; choose first_fit, best_fit or worst_fit"
            ))
        })?;
        Ok(self.inner.heuristic_action(rule))
    }

    fn metrics(&self, py: Python<'_>) -> PyResult<PyObject> {
        metrics_dict(py, &self.inner.metrics())
    }
}

/// N `place`-mode environments stepped in one call, with automatic reset.
#[pyclass(module = "simrs._simrs")]
struct VecPlaceEnv {
    inner: CoreVecPlaceEnv,
    obs: Vec<f32>,
    mask: Vec<i8>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    finished: Vec<Option<FinishedEpisode>>,
}

#[pymethods]
impl VecPlaceEnv {
    #[new]
    #[args(config = "None", num_envs = "1", seed = "0")]
    fn new(config: Option<&PyDict>, num_envs: usize, seed: u64) -> PyResult<Self> {
        let inner =
            CoreVecPlaceEnv::new(workload_config(config)?, num_envs, seed).map_err(to_py)?;
        let (n, d, h) = (inner.num_envs(), inner.obs_dim(), inner.num_hosts());
        Ok(Self {
            inner,
            obs: vec![0.0; n * d],
            mask: vec![0; n * h],
            rewards: vec![0.0; n],
            dones: vec![false; n],
            finished: vec![None; n],
        })
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.inner.num_envs()
    }

    #[getter]
    fn num_hosts(&self) -> usize {
        self.inner.num_hosts()
    }

    #[getter]
    fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }

    fn reset(&mut self, seed: u64) {
        self.inner.reset(seed);
    }

    fn observe_into(&mut self, py: Python<'_>, out: &PyAny) -> PyResult<()> {
        self.inner.observe(&mut self.obs);
        write_f32(py, out, &self.obs)
    }

    fn mask_into(&mut self, py: Python<'_>, out: &PyAny) -> PyResult<()> {
        self.inner.action_mask(&mut self.mask);
        write_i8(py, out, &self.mask)
    }

    /// Steps every environment. `actions` is an int64 array; rewards (float32) and dones
    /// (uint8) are written into the given arrays. Returns [(env_index, episode_dict), ...] for
    /// the episodes that ended (those environments have already been reset).
    fn step_into(
        &mut self,
        py: Python<'_>,
        actions: &PyAny,
        rewards: &PyAny,
        dones: &PyAny,
    ) -> PyResult<Vec<(usize, PyObject)>> {
        let acts: Vec<i64> = PyBuffer::<i64>::get(actions)?.to_vec(py)?;
        if let Some(bad) = acts.iter().find(|&&a| a < 0) {
            return Err(InvalidActionError::new_err(format!("invalid action {bad}: negative")));
        }
        let acts: Vec<usize> = acts.into_iter().map(|a| a as usize).collect();
        let Self { inner, rewards: r, dones: d, finished: f, .. } = self;
        py.allow_threads(|| inner.step(&acts, r, d, f)).map_err(to_py)?;
        PyBuffer::<f32>::get(rewards)?.copy_from_slice(py, &self.rewards)?;
        let done_bytes: Vec<u8> = self.dones.iter().map(|&x| x as u8).collect();
        PyBuffer::<u8>::get(dones)?.copy_from_slice(py, &done_bytes)?;
        let mut out = Vec::new();
        for (i, fin) in self.finished.iter().enumerate() {
            if let Some(e) = fin {
                let d = PyDict::new(py);
                d.set_item("return", e.ret)?;
                d.set_item("length", e.length)?;
                d.set_item("metrics", metrics_dict(py, &e.metrics)?)?;
                out.push((i, d.into()));
            }
        }
        Ok(out)
    }
}

#[pymodule]
fn _simrs(py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add_class::<PlaceEnv>()?;
    m.add_class::<VecPlaceEnv>()?;
    m.add("SimrsError", py.get_type::<SimrsError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InvalidActionError", py.get_type::<InvalidActionError>())?;
    m.add("EpisodeOverError", py.get_type::<EpisodeOverError>())?;
    m.add("InvariantError", py.get_type::<InvariantError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
