//! The PyO3 binding layer: argument conversion, buffer access and error mapping only. Every
//! rule lives in the pure-Rust core. Observations, masks, rewards and dones are written
//! straight into caller-owned NumPy arrays through the buffer protocol (no copies, no
//! per-element Python objects), and stepping releases the GIL.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::buffer::{Element, PyBuffer};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::backfill::Backfill;
use crate::compat_pick_env::CompatPickEnv;
use crate::env::{Env as CoreEnv, EnvConfig};
use crate::error::SimError;
use crate::hier_env::HierEnv;
use crate::metrics::EpisodeMetrics;
use crate::pick_env::PickEnv;
use crate::place_env::PlaceEnv;
use crate::place_net::{PlaceNet as CorePlaceNet, PlaceWeights};
use crate::place_train::HostLayers;
use crate::placement::Placement;
use crate::policy::Priority;
use crate::replay::{replay, ReplayConfig};
use crate::replay_compat::{replay_window, CompatMetric, CompatWorkload};
use crate::reward::RewardKind;
use crate::sim::ClusterSim;
use crate::swf::{self, SwfError};
use crate::vec_env::{FinishedEpisode, VecEnv as CoreVecEnv};
use crate::versus::{Rule, Versus};
use crate::workload::{TraceWorkload, WorkloadConfig, WorkloadSource};
use crate::cluster::{Cluster, Host};

create_exception!(_simrs, SimrsError, PyValueError, "Base class of every simrs error.");
create_exception!(_simrs, ConfigError, SimrsError, "A configuration value is invalid.");
create_exception!(_simrs, InvalidActionError, SimrsError, "The action is not allowed now.");
create_exception!(_simrs, EpisodeOverError, SimrsError, "step() after the episode ended.");
create_exception!(_simrs, InvariantError, SimrsError, "A simulator invariant broke (a bug).");
create_exception!(_simrs, TraceError, SimrsError, "An SWF trace cannot be read.");

fn to_py(err: SimError) -> PyErr {
    let msg = err.to_string();
    match err {
        SimError::InvalidConfig(_) => ConfigError::new_err(msg),
        SimError::InvalidAction { .. } => InvalidActionError::new_err(msg),
        SimError::EpisodeOver => EpisodeOverError::new_err(msg),
        SimError::CapacityViolation { .. } => InvariantError::new_err(msg),
    }
}

fn trace_err(err: SwfError) -> PyErr {
    TraceError::new_err(err.to_string())
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
                "max_jobs_per_step" => cfg.max_jobs_per_step = scalar(v, &key, "a positive integer")?,
                "host_cores" => cfg.host_cores = pair(v, &key)?,
                "host_mem_mb" => cfg.host_mem_mb = pair(v, &key)?,
                "job_cores" => cfg.job_cores = pair(v, &key)?,
                "job_mem_mb" => cfg.job_mem_mb = pair(v, &key)?,
                "mean_interarrival_s" => cfg.mean_interarrival_s = scalar(v, &key, "a number")?,
                "burst_prob" => cfg.burst_prob = scalar(v, &key, "a number")?,
                "runtime_median_s" => cfg.runtime_median_s = scalar(v, &key, "a number")?,
                "runtime_sigma" => cfg.runtime_sigma = scalar(v, &key, "a number")?,
                other => {
                    return Err(ConfigError::new_err(format!("unknown workload option {other:?}")))
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

/// A mutable view of a C-contiguous NumPy array, checked for type, size and writability.
struct RawMut<T> {
    ptr: *mut T,
    len: usize,
    _view: PyBuffer<T>,
}

// The view pins the array; the GIL is released only while we write into it.
unsafe impl<T: Element> Send for RawMut<T> {}

impl<T: Element> RawMut<T> {
    fn new(obj: &PyAny, len: usize, name: &str) -> PyResult<Self> {
        let view = PyBuffer::<T>::get(obj)
            .map_err(|e| ConfigError::new_err(format!("{name}: wrong array type ({e})")))?;
        if view.readonly() || !view.is_c_contiguous() || view.item_count() != len {
            return Err(ConfigError::new_err(format!(
                "{name} must be a writable C-contiguous array of {len} elements"
            )));
        }
        Ok(Self { ptr: view.buf_ptr() as *mut T, len, _view: view })
    }

    /// Refuses two outputs that share memory.
    fn check_apart_from<U: Element>(&self, other: &RawMut<U>) -> PyResult<()> {
        let (a, b) = (self.ptr as usize, other.ptr as usize);
        let (a_end, b_end) = (a + self.len * size_of::<T>(), b + other.len * size_of::<U>());
        if a < b_end && b < a_end {
            return Err(ConfigError::new_err("the outputs must not share memory"));
        }
        Ok(())
    }

    fn slice(&mut self) -> &mut [T] {
        // Safety: checked writable, contiguous and of `len` items of T; the view keeps the
        // array alive for our lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A read-only view of a C-contiguous NumPy array, checked for type.
struct RawRef<T> {
    ptr: *const T,
    len: usize,
    _view: PyBuffer<T>,
}

// The view pins the array; the GIL is released only while we read it.
unsafe impl<T: Element> Send for RawRef<T> {}

impl<T: Element> RawRef<T> {
    fn new(obj: &PyAny, name: &str, dtype: &str) -> PyResult<Self> {
        let view = PyBuffer::<T>::get(obj)
            .map_err(|_| ConfigError::new_err(format!("{name} must be a {dtype} array")))?;
        if !view.is_c_contiguous() {
            return Err(ConfigError::new_err(format!("{name} must be C-contiguous")));
        }
        Ok(Self { ptr: view.buf_ptr() as *const T, len: view.item_count(), _view: view })
    }

    fn slice(&self) -> &[T] {
        // Safety: checked contiguous, of `len` items of T; the view keeps the array alive.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Refuses an output array that shares memory with this input: Rust may not read a
    /// buffer while writing it (e.g. a view of the observations passed as the output).
    fn check_apart<U: Element>(&self, out: &RawMut<U>, what: &str) -> PyResult<()> {
        let (a, b) = (self.ptr as usize, out.ptr as usize);
        let (a_end, b_end) = (a + self.len * size_of::<T>(), b + out.len * size_of::<U>());
        if a < b_end && b < a_end {
            return Err(ConfigError::new_err(format!("{what} must not share memory with the inputs")));
        }
        Ok(())
    }
}

/// Weight names of the place policy's fused forward pass, as in PyTorch's state_dict.
const PLACE_NET_WEIGHTS: [&str; 11] = [
    "host_encoder.weight", "host_encoder.bias", "job_encoder.0.weight", "job_encoder.0.bias",
    "job_encoder.2.weight", "job_encoder.2.bias", "score_host.weight", "score_host.bias",
    "score_job.weight", "score_out.weight", "score_out.bias",
];

/// The `place` policy's forward pass, fused (place_net.rs): inference without PyTorch.
#[pyclass(module = "simrs._simrs")]
struct PlaceNet {
    inner: CorePlaceNet,
}

#[pymethods]
impl PlaceNet {
    /// `weights`: the policy's state_dict entries above, each a flat sequence of floats.
    #[new]
    fn new(weights: &PyDict) -> PyResult<Self> {
        for (k, _) in weights.iter() {
            let key: String = k.extract()?;
            if !PLACE_NET_WEIGHTS.contains(&key.as_str()) {
                return Err(ConfigError::new_err(format!("unknown place weight {key:?}")));
            }
        }
        let get = |key: &str| -> PyResult<Vec<f32>> {
            let v = weights
                .get_item(key)
                .ok_or_else(|| ConfigError::new_err(format!("missing place weight {key:?}")))?;
            v.extract::<Vec<f32>>()
                .map_err(|_| ConfigError::new_err(format!("{key} must be a sequence of floats")))
        };
        let out_b = get("score_out.bias")?;
        if out_b.len() != 1 {
            return Err(ConfigError::new_err("score_out.bias must hold one value"));
        }
        let w = PlaceWeights {
            hidden: get("host_encoder.bias")?.len(),
            host_encoder: (get("host_encoder.weight")?, get("host_encoder.bias")?),
            job_encoder_1: (get("job_encoder.0.weight")?, get("job_encoder.0.bias")?),
            job_encoder_2: (get("job_encoder.2.weight")?, get("job_encoder.2.bias")?),
            score_host: (get("score_host.weight")?, get("score_host.bias")?),
            score_job: get("score_job.weight")?,
            score_out: (get("score_out.weight")?, out_b[0]),
        };
        Ok(Self { inner: CorePlaceNet::new(&w).map_err(to_py)? })
    }

    /// Writes the masked logits of `obs` (float32, rows x (4 hosts + 2)) under `masks`
    /// (int8, rows x hosts) into `out` (float32, rows x hosts).
    fn logits(&self, py: Python<'_>, obs: &PyAny, masks: &PyAny, out: &PyAny) -> PyResult<()> {
        let obs = RawRef::<f32>::new(obs, "obs", "float32")?;
        let masks = RawRef::<i8>::new(masks, "masks", "int8")?;
        let mut out = RawMut::<f32>::new(out, masks.len, "out")?;
        obs.check_apart(&out, "out")?;
        masks.check_apart(&out, "out")?;
        let net = &self.inner;
        py.allow_threads(move || net.logits(obs.slice(), masks.slice(), out.slice()))
            .map_err(to_py)
    }

    /// Writes each row's highest-scoring allowed host into `actions` (int64, one per row).
    fn decide(&self, py: Python<'_>, obs: &PyAny, masks: &PyAny, actions: &PyAny) -> PyResult<()> {
        let obs = RawRef::<f32>::new(obs, "obs", "float32")?;
        let masks = RawRef::<i8>::new(masks, "masks", "int8")?;
        let n = PyBuffer::<i64>::get(actions).map(|b| b.item_count()).unwrap_or(0);
        let mut actions = RawMut::<i64>::new(actions, n, "actions")?;
        obs.check_apart(&actions, "actions")?;
        masks.check_apart(&actions, "actions")?;
        let net = &self.inner;
        py.allow_threads(move || net.decide(obs.slice(), masks.slice(), actions.slice()))
            .map_err(to_py)
    }
}

/// The `place` policy's per-host layers for training, forward and backward, fused
/// (place_train.rs). Built from the current weights for one forward and its backward.
#[pyclass(module = "simrs._simrs")]
struct PlaceHostLayers {
    inner: HostLayers,
}

#[pymethods]
impl PlaceHostLayers {
    /// float32 arrays as PyTorch holds them: `w1` (hidden x 6), `b1`, `ws` (hidden x hidden),
    /// `wo`; `bo` a float.
    #[new]
    fn new(w1: &PyAny, b1: &PyAny, ws: &PyAny, wo: &PyAny, bo: f32) -> PyResult<Self> {
        let w1 = RawRef::<f32>::new(w1, "w1", "float32")?;
        let b1 = RawRef::<f32>::new(b1, "b1", "float32")?;
        let ws = RawRef::<f32>::new(ws, "ws", "float32")?;
        let wo = RawRef::<f32>::new(wo, "wo", "float32")?;
        let inner = HostLayers::new(w1.slice(), b1.slice(), ws.slice(), wo.slice(), bo)
            .map_err(to_py)?;
        Ok(Self { inner })
    }

    /// Writes the masked logits (rows x hosts) and the mean host embeddings (rows x hidden)
    /// of `obs` under `masks` (int8), `share` (rows x hidden) being the job's part of the score.
    fn forward(&self, py: Python<'_>, obs: &PyAny, masks: &PyAny, share: &PyAny, logits: &PyAny,
               pooled: &PyAny) -> PyResult<()> {
        let obs = RawRef::<f32>::new(obs, "obs", "float32")?;
        let masks = RawRef::<i8>::new(masks, "masks", "int8")?;
        let share = RawRef::<f32>::new(share, "share", "float32")?;
        let mut logits = RawMut::<f32>::new(logits, masks.len, "logits")?;
        let n = PyBuffer::<f32>::get(pooled).map(|b| b.item_count()).unwrap_or(0);
        let mut pooled = RawMut::<f32>::new(pooled, n, "pooled")?;
        for out in [&logits, &pooled] {
            obs.check_apart(out, "the outputs")?;
            masks.check_apart(out, "the outputs")?;
            share.check_apart(out, "the outputs")?;
        }
        logits.check_apart_from(&pooled)?;
        let layers = &self.inner;
        py.allow_threads(move || {
            layers.forward(obs.slice(), masks.slice(), share.slice(), logits.slice(), pooled.slice())
        })
        .map_err(to_py)
    }

    /// Writes the gradient of `share` into `g_share` and returns the weights' gradients as
    /// lists in PyTorch's layout: `(w1, b1, ws, wo, bo)`.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn backward(&self, py: Python<'_>, obs: &PyAny, masks: &PyAny, share: &PyAny,
                g_logits: &PyAny, g_pooled: &PyAny, g_share: &PyAny)
                -> PyResult<(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, f32)> {
        let obs = RawRef::<f32>::new(obs, "obs", "float32")?;
        let masks = RawRef::<i8>::new(masks, "masks", "int8")?;
        let share = RawRef::<f32>::new(share, "share", "float32")?;
        let g_logits = RawRef::<f32>::new(g_logits, "g_logits", "float32")?;
        let g_pooled = RawRef::<f32>::new(g_pooled, "g_pooled", "float32")?;
        let mut g_share = RawMut::<f32>::new(g_share, share.len, "g_share")?;
        for input in [&obs, &share, &g_logits, &g_pooled] {
            input.check_apart(&g_share, "g_share")?;
        }
        masks.check_apart(&g_share, "g_share")?;
        let layers = &self.inner;
        let g = py
            .allow_threads(move || {
                layers.backward(obs.slice(), masks.slice(), share.slice(), g_logits.slice(),
                                g_pooled.slice(), g_share.slice())
            })
            .map_err(to_py)?;
        Ok((g.w1, g.b1, g.ws, g.wo, g.bo))
    }
}

/// An SWF trace loaded into memory (shared by every environment built from it).
#[pyclass(module = "simrs._simrs")]
#[derive(Clone)]
struct Trace {
    inner: Arc<swf::Trace>,
}

#[pymethods]
impl Trace {
    #[getter]
    fn num_jobs(&self) -> usize {
        self.inner.jobs.len()
    }

    #[getter]
    fn capacity(&self) -> i64 {
        self.inner.capacity()
    }

    #[getter]
    fn nodes(&self) -> i64 {
        self.inner.nodes()
    }

    /// What was dropped while reading, and why.
    fn dropped(&self, py: Python<'_>) -> PyResult<PyObject> {
        let d = PyDict::new(py);
        d.set_item("malformed", self.inner.dropped.malformed)?;
        d.set_item("non_positive_runtime", self.inner.dropped.non_positive_runtime)?;
        d.set_item("non_positive_procs", self.inner.dropped.non_positive_procs)?;
        d.set_item("total", self.inner.dropped.total())?;
        Ok(d.into())
    }

    /// (submit, run, requested time, processors) of job `i`, for inspection and tests.
    fn job(&self, i: usize) -> PyResult<(i64, i64, i64, i64)> {
        let j = self.inner.jobs.get(i).ok_or_else(|| ConfigError::new_err(format!("no job {i}")))?;
        Ok((j.submit, j.run, j.requested_time, j.procs))
    }
}

/// Loads an SWF file; `load_scale` > 1 compresses inter-arrival times.
#[pyfunction(skip_malformed = "false", load_scale = "1.0")]
#[pyo3(text_signature = "(path, skip_malformed=False, load_scale=1.0)")]
fn load_trace(path: PathBuf, skip_malformed: bool, load_scale: f64) -> PyResult<Trace> {
    let mut trace = swf::load(&path, skip_malformed).map_err(trace_err)?;
    if load_scale != 1.0 {
        trace.scale_load(load_scale).map_err(trace_err)?;
    }
    Ok(Trace { inner: Arc::new(trace) })
}

/// The RLScheduler-compatible pick replay: its workload and episode shape.
struct CompatSpec {
    workload: Arc<CompatWorkload>,
    episode_length: usize,
}

struct EnvSpec {
    mode: String,
    config: EnvConfig,
    window: usize,
    backfill: Backfill,
    compat: Option<CompatSpec>,
}

#[allow(clippy::too_many_arguments)]
fn env_spec(mode: &str, config: Option<&PyDict>, trace: Option<Trace>, episode_length: usize,
            reward: &str, window: usize, backfill: &str, protocol: &str) -> PyResult<EnvSpec> {
    let compat = match protocol {
        "simrs" => None,
        "rlscheduler" => {
            let Some(t) = trace.as_ref() else {
                return Err(ConfigError::new_err("the rlscheduler protocol replays a trace; pass trace="));
            };
            if mode != "pick" {
                return Err(ConfigError::new_err("the rlscheduler protocol is a pick-mode protocol"));
            }
            if !matches!(backfill, "none" | "shadow") {
                return Err(ConfigError::new_err(
                    "the rlscheduler protocol has backfill none or shadow",
                ));
            }
            Some(CompatSpec {
                workload: Arc::new(CompatWorkload::from_trace(&t.inner)),
                episode_length,
            })
        }
        other => {
            return Err(ConfigError::new_err(format!(
                "unknown protocol {other:?}; choose simrs or rlscheduler"
            )))
        }
    };
    let source = match trace {
        Some(t) => {
            if config.is_some() {
                return Err(ConfigError::new_err("give a workload config or a trace, not both"));
            }
            let tw = TraceWorkload::from_trace(&t.inner, episode_length).map_err(to_py)?;
            WorkloadSource::Trace(Arc::new(tw))
        }
        None => WorkloadSource::Synthetic(workload_config(config)?),
    };
    if !matches!(mode, "place" | "pick" | "hierarchical") {
        return Err(ConfigError::new_err(format!(
            "unknown mode {mode:?}; choose place, pick or hierarchical"
        )));
    }
    Ok(EnvSpec {
        mode: mode.to_string(),
        config: EnvConfig { source, reward: RewardKind::parse(reward).map_err(to_py)? },
        window,
        backfill: Backfill::parse(backfill).map_err(to_py)?,
        compat,
    })
}

enum AnyEnv {
    Place(PlaceEnv),
    Pick(PickEnv),
    Hier(HierEnv),
    Compat(CompatPickEnv),
}

impl AnyEnv {
    fn build(spec: &EnvSpec, seed: u64) -> PyResult<Self> {
        let c = spec.config.clone();
        if let Some(cs) = &spec.compat {
            let backfill = spec.backfill != Backfill::None;
            return Ok(AnyEnv::Compat(
                CompatPickEnv::new(Arc::clone(&cs.workload), cs.episode_length, spec.window,
                                   backfill, c.reward, seed)
                    .map_err(to_py)?,
            ));
        }
        Ok(match spec.mode.as_str() {
            "place" => AnyEnv::Place(PlaceEnv::new(c, seed).map_err(to_py)?),
            "pick" => AnyEnv::Pick(PickEnv::new(c, spec.window, spec.backfill, seed).map_err(to_py)?),
            _ => AnyEnv::Hier(HierEnv::new(c, seed).map_err(to_py)?),
        })
    }

    /// Boxed for a VecEnv; with `versus`, every episode's return is scored against that
    /// heuristic's on the same episode (see versus.rs).
    fn boxed_versus(self, versus: Option<Rule>) -> PyResult<Box<dyn CoreEnv>> {
        let Some(rule) = versus else { return Ok(self.boxed()) };
        Ok(match self {
            AnyEnv::Place(e) => Box::new(Versus::new(e, rule).map_err(to_py)?),
            AnyEnv::Pick(e) => Box::new(Versus::new(e, rule).map_err(to_py)?),
            AnyEnv::Compat(e) => Box::new(Versus::new(e, rule).map_err(to_py)?),
            AnyEnv::Hier(_) => {
                return Err(ConfigError::new_err(
                    "hierarchical mode has no single-step heuristic to score against",
                ))
            }
        })
    }

    fn boxed(self) -> Box<dyn CoreEnv> {
        match self {
            AnyEnv::Place(e) => Box::new(e),
            AnyEnv::Pick(e) => Box::new(e),
            AnyEnv::Hier(e) => Box::new(e),
            AnyEnv::Compat(e) => Box::new(e),
        }
    }

    fn core(&self) -> &dyn CoreEnv {
        match self {
            AnyEnv::Place(e) => e,
            AnyEnv::Pick(e) => e,
            AnyEnv::Hier(e) => e,
            AnyEnv::Compat(e) => e,
        }
    }

    fn core_mut(&mut self) -> &mut dyn CoreEnv {
        match self {
            AnyEnv::Place(e) => e,
            AnyEnv::Pick(e) => e,
            AnyEnv::Hier(e) => e,
            AnyEnv::Compat(e) => e,
        }
    }
}

/// One environment of any mode.
#[pyclass(module = "simrs._simrs")]
struct Env {
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
        Ok(Self { inner: AnyEnv::build(&spec, seed)?, mode: spec.mode })
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
            AnyEnv::Hier(e) => matches!(e.phase(), crate::hier_env::Phase::Host { .. }) as u8,
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

    /// The action a named heuristic takes now: a placement rule (place mode) or a priority
    /// rule (pick mode). None once the episode is over.
    fn heuristic_action(&self, name: &str) -> PyResult<Option<usize>> {
        match &self.inner {
            AnyEnv::Place(e) => Ok(e.heuristic_action(Placement::parse(name).map_err(to_py)?)),
            AnyEnv::Pick(e) => Ok(e.heuristic_action(Priority::parse(name).map_err(to_py)?)),
            AnyEnv::Compat(e) => Ok(e.heuristic_action(Priority::parse(name).map_err(to_py)?)),
            AnyEnv::Hier(_) => Err(ConfigError::new_err(
                "hierarchical mode has no single-step heuristic; use its masks",
            )),
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
struct VecEnv {
    inner: CoreVecEnv,
    finished: Vec<Option<FinishedEpisode>>,
    bound: Option<Bound>,
}

#[pymethods]
impl VecEnv {
    #[new]
    #[args(num_envs = "1", config = "None", seed = "0", "*", reward = "\"wait\"",
           window = "128", backfill = "\"none\"", trace = "None", episode_length = "256",
           protocol = "\"simrs\"", versus = "None")]
    #[allow(clippy::too_many_arguments)]
    fn new(mode: &str, num_envs: usize, config: Option<&PyDict>, seed: u64, reward: &str,
           window: usize, backfill: &str, trace: Option<Trace>, episode_length: usize,
           protocol: &str, versus: Option<&str>) -> PyResult<Self> {
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
            .collect::<PyResult<Vec<_>>>()?;
        let inner = CoreVecEnv::new(envs, seed).map_err(to_py)?;
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

/// RLScheduler-compatible replay of windows of a trace; returns the per-window values.
#[pyfunction(backfill = "false", metric = "\"bsld\"", length = "1024")]
fn replay_compat(py: Python<'_>, trace: Trace, policy: &str, starts: Vec<usize>, backfill: bool,
                 metric: &str, length: usize) -> PyResult<Vec<f64>> {
    let priority = Priority::parse(policy).map_err(to_py)?;
    let metric = match metric {
        "bsld" => CompatMetric::BoundedSlowdown,
        "util" => CompatMetric::Utilization,
        other => return Err(ConfigError::new_err(format!("unknown metric {other:?}; choose bsld or util"))),
    };
    let t = &trace.inner;
    if let Some(bad) = starts.iter().find(|&&s| s + length > t.jobs.len()) {
        return Err(ConfigError::new_err(format!(
            "window starting at {bad} runs past the trace's {} jobs", t.jobs.len()
        )));
    }
    let workload = Arc::new(CompatWorkload::from_trace(t));
    Ok(py.allow_threads(|| {
        starts.iter()
            .map(|&s| replay_window(&workload, s, length, priority, backfill, metric))
            .collect()
    }))
}

/// Textbook replay of jobs `start .. start + length` of a trace on one pool of processors.
#[pyfunction(placement = "\"first_fit\"", backfill = "\"none\"", start = "0", length = "None")]
fn replay_trace(py: Python<'_>, trace: Trace, policy: &str, placement: &str, backfill: &str,
                start: usize, length: Option<usize>) -> PyResult<PyObject> {
    let cfg = ReplayConfig {
        priority: Priority::parse(policy).map_err(to_py)?,
        placement: Placement::parse(placement).map_err(to_py)?,
        backfill: Backfill::parse(backfill).map_err(to_py)?,
    };
    let t = &trace.inner;
    let len = length.unwrap_or(t.jobs.len().saturating_sub(start));
    if len == 0 || start + len > t.jobs.len() {
        return Err(ConfigError::new_err(format!(
            "start {start} and length {len} do not fit the trace's {} jobs", t.jobs.len()
        )));
    }
    let capacity = t.capacity();
    let tw = TraceWorkload::from_trace(t, t.jobs.len()).map_err(to_py)?;
    let first = tw.jobs[start].submit;
    let jobs = tw.jobs[start..start + len]
        .iter()
        .map(|j| crate::job::Job { submit: j.submit.saturating_sub(first), ..j.clone() })
        .collect();
    let (metrics, elapsed) = py.allow_threads(move || {
        let mut sim = ClusterSim::new(Cluster::new(vec![Host::new(capacity as u32, 0)]), jobs);
        let t0 = std::time::Instant::now();
        let m = replay(&mut sim, cfg);
        (m, t0.elapsed().as_secs_f64())
    });
    let d = metrics_dict(py, &metrics)?;
    d.as_ref(py).downcast::<PyDict>()?.set_item("elapsed_s", elapsed)?;
    Ok(d)
}

#[pymodule]
fn _simrs(py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add_class::<Env>()?;
    m.add_class::<VecEnv>()?;
    m.add_class::<Trace>()?;
    m.add_class::<PlaceNet>()?;
    m.add_class::<PlaceHostLayers>()?;
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
