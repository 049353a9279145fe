//! `Env` (one environment of any mode) and `VecEnv` (N of one mode, stepped inside Rust),
//! built from an `EnvSpec` that the core parses (src/envs/spec.rs); this module only turns
//! Python values into options and writes results into NumPy arrays.

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::envs::spec::{AnyEnv, EnvSpec, OptionValue};
use crate::envs::vec_env::{FinishedEpisode, VecEnv as CoreVecEnv};
use crate::heuristics::placement::Placement;
use crate::heuristics::policy::Priority;
use crate::heuristics::versus::Rule;
use crate::error::SimError;
use crate::metrics::EpisodeMetrics;
use crate::python::buffers::RawMut;
use crate::python::errors::{to_py, ConfigError};
use crate::python::replay::Trace;

/// A Python value as an option for the core to judge (it names the option on error).
fn option_value(value: &PyAny) -> OptionValue {
    if value.is_instance_of::<pyo3::types::PyBool>().unwrap_or(false) {
        return OptionValue::Other("bool".into());
    }
    if let Ok(n) = value.extract::<i64>() {
        if value.is_instance_of::<pyo3::types::PyInt>().unwrap_or(false) {
            return OptionValue::Int(n);
        }
    }
    if value.is_instance_of::<pyo3::types::PyFloat>().unwrap_or(false) {
        if let Ok(x) = value.extract::<f64>() {
            return OptionValue::Float(x);
        }
    }
    if let Some((a, b)) = two_items(value) {
        return OptionValue::Pair(Box::new(option_value(a)), Box::new(option_value(b)));
    }
    OptionValue::Other(value.get_type().name().unwrap_or("object").to_string())
}

/// The two items of a tuple or list of two, for pair options such as `host_cores`.
fn two_items(value: &PyAny) -> Option<(&PyAny, &PyAny)> {
    let items: Vec<&PyAny> = if let Ok(t) = value.downcast::<PyTuple>() {
        t.iter().collect()
    } else if let Ok(l) = value.downcast::<PyList>() {
        l.iter().collect()
    } else {
        return None;
    };
    match items.as_slice() {
        [a, b] => Some((a, b)),
        _ => None,
    }
}

/// A workload config dict as named options; a key that is not a string is an error.
fn options(config: Option<&PyDict>) -> PyResult<Option<Vec<(String, OptionValue)>>> {
    let Some(d) = config else { return Ok(None) };
    d.iter()
        .map(|(k, v)| Ok((k.extract::<String>().map_err(|_| ConfigError::new_err(
            "workload option names must be strings"))?, option_value(v))))
        .collect::<PyResult<Vec<_>>>()
        .map(Some)
}

#[allow(clippy::too_many_arguments)]
fn env_spec(mode: &str, config: Option<&PyDict>, trace: Option<Trace>, episode_length: usize,
            reward: &str, window: usize, backfill: &str, protocol: &str) -> PyResult<EnvSpec> {
    let options = options(config)?;
    EnvSpec::new(mode, options.as_deref(), trace.as_ref().map(|t| &t.inner), episode_length,
                 reward, window, backfill, protocol)
        .map_err(to_py)
}

pub(crate) fn metrics_dict(py: Python<'_>, m: &EpisodeMetrics) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    d.set_item("jobs", m.jobs)?;
    d.set_item("completed", m.completed)?;
    d.set_item("completion_rate", m.completion_rate)?;
    d.set_item("mean_wait_s", m.mean_wait_s)?;
    d.set_item("mean_turnaround_s", m.mean_turnaround_s)?;
    d.set_item("mean_bounded_slowdown", m.mean_bounded_slowdown)?;
    d.set_item("p95_bounded_slowdown", m.p95_bounded_slowdown)?;
    d.set_item("makespan_s", m.makespan_s)?;
    d.set_item("utilization", m.utilization)?;
    d.set_item("utilization_rlscheduler", m.utilization_rlscheduler)?;
    d.set_item("load_imbalance", m.load_imbalance)?;
    Ok(d.into())
}

/// One environment of any mode.
#[pyclass(module = "simrs._simrs")]
pub(crate) struct Env {
    inner: AnyEnv,
    #[pyo3(get)]
    mode: String,
}

#[pymethods]
impl Env {
    #[new]
    #[args(config = "None", seed = "0", "*", reward = "\"wait\"", window = "128",
           backfill = "\"none\"", trace = "None", episode_length = "256",
           protocol = "\"simrs\"")]
    #[allow(clippy::too_many_arguments)]
    fn new(mode: &str, config: Option<&PyDict>, seed: u64, reward: &str, window: usize,
           backfill: &str, trace: Option<Trace>, episode_length: usize, protocol: &str)
           -> PyResult<Self> {
        let spec = env_spec(mode, config, trace, episode_length, reward, window, backfill,
                            protocol)?;
        let inner = AnyEnv::build(&spec, seed).map_err(to_py)?;
        Ok(Self { inner, mode: spec.mode.name().to_string() })
    }

    #[getter]
    fn obs_dim(&self) -> usize {
        self.inner.core().obs_dim()
    }

    #[getter]
    fn action_dim(&self) -> usize {
        self.inner.core().action_dim()
    }

    #[getter]
    fn num_hosts(&self) -> usize {
        self.inner.core().num_hosts()
    }

    #[getter]
    fn now(&self) -> u64 {
        self.inner.core().now()
    }

    #[getter]
    fn done(&self) -> bool {
        self.inner.core().is_done()
    }

    #[getter]
    fn queue_length(&self) -> usize {
        self.inner.core().queue_length()
    }

    /// 0 while choosing a job, 1 while choosing a host (hierarchical); 0 otherwise.
    #[getter]
    fn phase(&self) -> u8 {
        match &self.inner {
            AnyEnv::Hier(e) => matches!(e.phase(), crate::envs::hier_env::Phase::Host { .. }) as u8,
            _ => 0,
        }
    }

    fn reset(&mut self, seed: u64) {
        self.inner.core_mut().reset(seed);
    }

    /// Starts the episode at job `start` of the trace (the rlscheduler protocol's
    /// evaluation windows).
    fn reset_window(&mut self, start: usize) -> PyResult<()> {
        match &mut self.inner {
            AnyEnv::Compat(e) => e.reset_window(start).map_err(to_py),
            _ => Err(ConfigError::new_err("reset_window needs protocol=\"rlscheduler\"")),
        }
    }

    /// Applies an action; returns (reward, done).
    fn step(&mut self, action: usize) -> PyResult<(f64, bool)> {
        let env = self.inner.core_mut();
        let r = env.step(action).map_err(to_py)?;
        Ok((r, env.is_done()))
    }

    fn observe_into(&self, obs: &PyAny) -> PyResult<()> {
        let mut out = RawMut::<f32>::new(obs, self.obs_dim(), "obs")?;
        self.inner.core().observe(out.slice());
        Ok(())
    }

    fn mask_into(&self, mask: &PyAny) -> PyResult<()> {
        let mut out = RawMut::<i8>::new(mask, self.action_dim(), "mask")?;
        self.inner.core().action_mask(out.slice());
        Ok(())
    }

    /// The action a named heuristic takes now: a placement rule (place mode), a priority
    /// rule (pick mode), or a pair "priority+placement" (hierarchical mode: the job rule in
    /// the job phase, the host rule in the host phase). None once the episode is over.
    fn heuristic_action(&self, name: &str) -> PyResult<Option<usize>> {
        match &self.inner {
            AnyEnv::Place(e) => Ok(e.heuristic_action(Placement::parse(name).map_err(to_py)?)),
            AnyEnv::Pick(e) => Ok(e.heuristic_action(Priority::parse(name).map_err(to_py)?)),
            AnyEnv::Compat(e) => Ok(e.heuristic_action(Priority::parse(name).map_err(to_py)?)),
            AnyEnv::Hier(e) => {
                let (job_rule, host_rule) = name.split_once('+').ok_or_else(|| {
                    ConfigError::new_err(format!(
                        "hierarchical mode takes a heuristic pair job_rule+host_rule \
                         (e.g. sjf+best_fit), got {name:?}"
                    ))
                })?;
                Ok(e.heuristic_action(
                    Priority::parse(job_rule).map_err(to_py)?,
                    Placement::parse(host_rule).map_err(to_py)?,
                ))
            }
        }
    }

    fn metrics(&self, py: Python<'_>) -> PyResult<PyObject> {
        metrics_dict(py, &self.inner.core().metrics())
    }

    /// The current episode's hosts `(cores, mem_mb)` and jobs `(submit, runtime, requested,
    /// cores, mem_mb)`, e.g. to drive a reference implementation through the same episode.
    #[allow(clippy::type_complexity)]
    fn episode(&self) -> PyResult<(Vec<(u32, u64)>, Vec<(u64, u64, u64, u32, u64)>)> {
        let sim = self.inner.core().sim().ok_or_else(|| {
            ConfigError::new_err("the rlscheduler protocol has no general episode to export")
        })?;
        let hosts = sim.cluster.hosts.iter().map(|h| (h.cores, h.mem_mb)).collect();
        let jobs = sim.jobs.iter()
            .map(|j| (j.submit, j.runtime, j.requested_runtime, j.cores, j.mem_mb))
            .collect();
        Ok((hosts, jobs))
    }
}

/// Columns of the per-environment episode table written when an episode ends.
const EPISODE_COLUMNS: [&str; 13] = [
    "return", "length", "jobs", "completed", "completion_rate", "mean_wait_s",
    "mean_turnaround_s", "mean_bounded_slowdown", "p95_bounded_slowdown", "makespan_s",
    "utilization", "utilization_rlscheduler", "load_imbalance",
];

fn episode_row(e: &FinishedEpisode, row: &mut [f64]) {
    let m = &e.metrics;
    row.copy_from_slice(&[
        e.ret, e.length as f64, m.jobs as f64, m.completed as f64, m.completion_rate,
        m.mean_wait_s, m.mean_turnaround_s, m.mean_bounded_slowdown, m.p95_bounded_slowdown,
        m.makespan_s, m.utilization, m.utilization_rlscheduler, m.load_imbalance,
    ]);
}

/// The arrays a VecEnv writes into, bound once so each step only reads the actions.
struct Bound {
    obs: RawMut<f32>,
    masks: RawMut<i8>,
    rewards: RawMut<f32>,
    dones: RawMut<u8>,
    episodes: RawMut<f64>,
}

/// N environments of one mode, stepped inside Rust.
#[pyclass(module = "simrs._simrs")]
pub(crate) struct VecEnv {
    inner: CoreVecEnv,
    finished: Vec<Option<FinishedEpisode>>,
    bound: Option<Bound>,
}

#[pymethods]
impl VecEnv {
    #[new]
    #[args(num_envs = "1", config = "None", seed = "0", "*", reward = "\"wait\"",
           window = "128", backfill = "\"none\"", trace = "None", episode_length = "256",
           protocol = "\"simrs\"", versus = "None", first_index = "0")]
    #[allow(clippy::too_many_arguments)]
    fn new(mode: &str, num_envs: usize, config: Option<&PyDict>, seed: u64, reward: &str,
           window: usize, backfill: &str, trace: Option<Trace>, episode_length: usize,
           protocol: &str, versus: Option<&str>, first_index: usize) -> PyResult<Self> {
        let spec = env_spec(mode, config, trace, episode_length, reward, window, backfill,
                            protocol)?;
        let rule = versus
            .map(|name| match mode {
                "place" => Placement::parse(name).map(Rule::Place),
                _ => Priority::parse(name).map(Rule::Pick),
            })
            .transpose()
            .map_err(to_py)?;
        let envs = (0..num_envs)
            .map(|_| AnyEnv::build(&spec, seed).and_then(|e| e.boxed_versus(rule)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(to_py)?;
        // A worker's shard of a larger set: its environments' seeds follow their index there.
        let inner = CoreVecEnv::shard(envs, seed, first_index).map_err(to_py)?;
        Ok(Self { finished: vec![None; inner.num_envs()], inner, bound: None })
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.inner.num_envs()
    }

    #[getter]
    fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }

    #[getter]
    fn action_dim(&self) -> usize {
        self.inner.action_dim()
    }

    /// Names of the columns of the episode table (see `bind`).
    #[classattr]
    fn episode_columns() -> Vec<&'static str> {
        EPISODE_COLUMNS.to_vec()
    }

    /// Binds the output arrays: observations (float32, n x obs_dim), masks (int8,
    /// n x action_dim), rewards (float32, n), dones (uint8, n) and the episode table
    /// (float64, n x 13) where a row is written when that environment's episode ends.
    fn bind(&mut self, obs: &PyAny, masks: &PyAny, rewards: &PyAny, dones: &PyAny,
            episodes: &PyAny) -> PyResult<()> {
        let n = self.inner.num_envs();
        self.bound = Some(Bound {
            obs: RawMut::new(obs, n * self.inner.obs_dim(), "obs")?,
            masks: RawMut::new(masks, n * self.inner.action_dim(), "masks")?,
            rewards: RawMut::new(rewards, n, "rewards")?,
            dones: RawMut::new(dones, n, "dones")?,
            episodes: RawMut::new(episodes, n * EPISODE_COLUMNS.len(), "episodes")?,
        });
        Ok(())
    }

    /// Resets every environment and writes the first observations and masks.
    fn reset(&mut self, py: Python<'_>, seed: u64) -> PyResult<()> {
        let Self { inner, bound, .. } = self;
        let b = bound.as_mut().ok_or_else(|| ConfigError::new_err("call bind() first"))?;
        py.allow_threads(|| {
            inner.reset(seed);
            inner.observe(b.obs.slice(), b.masks.slice());
        });
        Ok(())
    }

    /// Steps every environment with `actions` (int64, n) and writes the bound arrays.
    /// Returns the indices of environments whose episode ended (already reset; their row of
    /// the episode table holds the result).
    fn step(&mut self, py: Python<'_>, actions: &PyAny) -> PyResult<Vec<usize>> {
        let n = self.inner.num_envs();
        let acts = PyBuffer::<i64>::get(actions)
            .map_err(|e| ConfigError::new_err(format!("actions must be int64 ({e})")))?;
        if acts.item_count() != n || !acts.is_c_contiguous() {
            return Err(ConfigError::new_err(format!("actions must hold {n} int64 values")));
        }
        let act_vec = acts.to_vec(py)?;
        let Self { inner, finished, bound } = self;
        let b = bound.as_mut().ok_or_else(|| ConfigError::new_err("call bind() first"))?;
        let ended = py.allow_threads(|| -> Result<Vec<usize>, SimError> {
            inner.step(&act_vec, b.obs.slice(), b.masks.slice(), b.rewards.slice(),
                       b.dones.slice(), finished)?;
            let table = b.episodes.slice();
            let mut ended = Vec::new();
            for (i, fin) in finished.iter().enumerate() {
                if let Some(e) = fin {
                    let w = EPISODE_COLUMNS.len();
                    episode_row(e, &mut table[i * w..(i + 1) * w]);
                    ended.push(i);
                }
            }
            Ok(ended)
        });
        ended.map_err(to_py)
    }
}
