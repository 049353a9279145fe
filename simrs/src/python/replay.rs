//! SWF traces and whole-trace heuristic replays: `load_trace` and `Trace`, the textbook
//! `replay_trace` and RLScheduler's `replay_compat`.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::cluster::{Cluster, Host};
use crate::heuristics::backfill::Backfill;
use crate::heuristics::placement::Placement;
use crate::heuristics::policy::Priority;
use crate::python::envs::metrics_dict;
use crate::python::errors::{to_py, trace_err, ConfigError};
use crate::replay::compat::{replay_window, CompatMetric, CompatWorkload};
use crate::replay::{replay, ReplayConfig};
use crate::sim::ClusterSim;
use crate::swf;
use crate::workload::TraceWorkload;

/// An SWF trace loaded into memory (shared by every environment built from it).
#[pyclass(module = "simrs._simrs")]
#[derive(Clone)]
pub(crate) struct Trace {
    pub(crate) inner: Arc<swf::Trace>,
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
pub(crate) fn load_trace(path: PathBuf, skip_malformed: bool, load_scale: f64) -> PyResult<Trace> {
    let mut trace = swf::load(&path, skip_malformed).map_err(trace_err)?;
    if load_scale != 1.0 {
        trace.scale_load(load_scale).map_err(trace_err)?;
    }
    Ok(Trace { inner: Arc::new(trace) })
}

/// RLScheduler-compatible replay of windows of a trace; returns the per-window values.
#[pyfunction(backfill = "false", metric = "\"bsld\"", length = "1024")]
pub(crate) fn replay_compat(py: Python<'_>, trace: Trace, policy: &str, starts: Vec<usize>, backfill: bool,
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
pub(crate) fn replay_trace(py: Python<'_>, trace: Trace, policy: &str, placement: &str, backfill: &str,
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
