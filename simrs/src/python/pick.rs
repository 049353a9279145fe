//! The `pick` policy's training path in one call each (pick_update.rs): `PickBatch`, an
//! update's batch packed once with each minibatch's loss and gradients, and `pick_sample`,
//! a rollout step's decisions.

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::nn::entity_train::EntityLayers;
use crate::nn::pick_update::{minibatch, sample, PickBatch as CorePickBatch, PpoTerms, ValueHead};
use crate::python::buffers::{RawMut, RawRef};
use crate::python::errors::{to_py, ConfigError};

/// The `PickPolicy`'s weights, named as in its state_dict.
const PICK_WEIGHTS: [&str; 12] = [
    "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
    "scorer.0.weight", "scorer.0.bias", "scorer.2.weight", "scorer.2.bias",
    "value_head.0.weight", "value_head.0.bias", "value_head.2.weight", "value_head.2.bias",
];

/// The policy's weights seen in place, in `PICK_WEIGHTS`' order.
struct PickWeights {
    w: Vec<RawRef<f32>>,
    layers: EntityLayers,
    value_b2: f32,
}

impl PickWeights {
    fn new(weights: &PyDict) -> PyResult<Self> {
        for (k, _) in weights.iter() {
            let key: String = k.extract()?;
            if !PICK_WEIGHTS.contains(&key.as_str()) {
                return Err(ConfigError::new_err(format!("unknown pick weight {key:?}")));
            }
        }
        let mut w = Vec::with_capacity(PICK_WEIGHTS.len());
        for key in PICK_WEIGHTS {
            let v = weights
                .get_item(key)
                .ok_or_else(|| ConfigError::new_err(format!("missing pick weight {key:?}")))?;
            w.push(RawRef::<f32>::new(v, key, "float32")?);
        }
        let single = |i: usize| -> PyResult<f32> {
            match w[i].slice() {
                [v] => Ok(*v),
                _ => Err(ConfigError::new_err(format!("{} must hold one value", PICK_WEIGHTS[i]))),
            }
        };
        let (bo, value_b2) = (single(7)?, single(11)?);
        let layers = EntityLayers::new(w[0].slice(), w[1].slice(), w[2].slice(), w[3].slice(),
                                       w[4].slice(), w[6].slice(), bo)
            .map_err(to_py)?;
        Ok(Self { w, layers, value_b2 })
    }

    fn scorer_bias(&self) -> &[f32] {
        self.w[5].slice()
    }

    fn value(&self) -> ValueHead<'_> {
        ValueHead { w1: self.w[8].slice(), b1: self.w[9].slice(), w2: self.w[10].slice(), b2: self.value_b2 }
    }
}

fn window_of(mask: &PyAny) -> PyResult<usize> {
    let view = PyBuffer::<i8>::get(mask).map_err(|_| ConfigError::new_err("mask must be an int8 array"))?;
    match view.shape() {
        [_, window] if *window > 0 => Ok(*window),
        _ => Err(ConfigError::new_err("mask must be a rows x window array")),
    }
}

/// A `pick` update's batch, packed once from its observations (float32, rows x window x 8
/// features) and masks (int8, rows x window), with each row's action (int64, its slot),
/// old log-probability and value target (float32).
#[pyclass(module = "simrs._simrs")]
pub(crate) struct PickBatch {
    inner: CorePickBatch,
}

#[pymethods]
impl PickBatch {
    #[new]
    fn new(obs: &PyAny, mask: &PyAny, actions: &PyAny, old_logprob: &PyAny, targets: &PyAny)
           -> PyResult<Self> {
        let window = window_of(mask)?;
        let obs = RawRef::<f32>::new(obs, "obs", "float32")?;
        let mask = RawRef::<i8>::new(mask, "mask", "int8")?;
        let actions = RawRef::<i64>::new(actions, "actions", "int64")?;
        let old_logprob = RawRef::<f32>::new(old_logprob, "old_logprob", "float32")?;
        let targets = RawRef::<f32>::new(targets, "targets", "float32")?;
        let inner = CorePickBatch::new(window, obs.slice(), mask.slice(), actions.slice(),
                                       old_logprob.slice().to_vec(), targets.slice().to_vec())
            .map_err(to_py)?;
        Ok(Self { inner })
    }

    #[getter]
    fn rows(&self) -> usize {
        self.inner.rows()
    }

    /// The minibatch `rows` (int64 indices into the batch) with their advantages (float32),
    /// under `weights` (the policy's state_dict entries, float32): writes every weight's
    /// gradient into `grads` (a dict by the same names of writable float32 arrays, each the
    /// size of its weight, in PyTorch's layout, apart from the weights and from each other)
    /// and returns the loss sums `[policy, value, entropy, approx_kl, clipped]`.
    #[allow(clippy::too_many_arguments)]
    fn minibatch(&self, py: Python<'_>, weights: &PyDict, rows: &PyAny, adv: &PyAny, clip: f32,
                 ent_coef: f32, vf_coef: f32, size: f32, grads: &PyDict) -> PyResult<Vec<f64>> {
        let w = PickWeights::new(weights)?;
        let mut outs = Vec::with_capacity(PICK_WEIGHTS.len());
        for (key, weight) in PICK_WEIGHTS.iter().zip(&w.w) {
            let out = grads
                .get_item(key)
                .ok_or_else(|| ConfigError::new_err(format!("grads: missing {key:?}")))?;
            let out = RawMut::<f32>::new(out, weight.len, &format!("grads[{key:?}]"))?;
            for (other_key, other) in PICK_WEIGHTS.iter().zip(&w.w) {
                other.check_apart(&out, &format!("grads[{key:?}] (here {other_key:?})"))?;
            }
            for earlier in &outs {
                out.check_apart_from(earlier)?;
            }
            outs.push(out);
        }
        let rows = RawRef::<i64>::new(rows, "rows", "int64")?;
        let adv = RawRef::<f32>::new(adv, "adv", "float32")?;
        let terms = PpoTerms { clip, ent_coef, vf_coef, size };
        let (batch, value, scorer_bias, layers) = (&self.inner, w.value(), w.scorer_bias(), &w.layers);
        let g = py
            .allow_threads(move || {
                minibatch(layers, scorer_bias, &value, batch, rows.slice(), adv.slice(), terms)
            })
            .map_err(to_py)?;
        let l = g.layers;
        let computed: [&[f32]; 12] = [
            &l.w1, &l.b1, &l.w2, &l.b2, &l.ws, &g.scorer_bias, &l.wo, &[l.bo],
            &g.value_w1, &g.value_b1, &g.value_w2, &[g.value_b2],
        ];
        // Every size checked before any output is written: a refused call writes none.
        for ((out, grad), key) in outs.iter().zip(computed).zip(PICK_WEIGHTS) {
            if grad.len() != out.len {
                return Err(ConfigError::new_err(format!(
                    "{key:?}: a gradient of {} values for a weight of {}", grad.len(), out.len
                )));
            }
        }
        for (out, grad) in outs.iter_mut().zip(computed) {
            out.slice().copy_from_slice(grad);
        }
        Ok(g.stats.to_vec())
    }
}

/// A rollout step: each row's action drawn from its uniform (float32 in [0, 1)) by inverse
/// CDF, written into `actions` (int64), with its log-probability into `logprobs` and the
/// row's value into `values` (float32).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pick_sample(py: Python<'_>, weights: &PyDict, obs: &PyAny, mask: &PyAny,
                          uniforms: &PyAny, actions: &PyAny, logprobs: &PyAny, values: &PyAny)
                          -> PyResult<()> {
    let window = window_of(mask)?;
    let w = PickWeights::new(weights)?;
    let obs = RawRef::<f32>::new(obs, "obs", "float32")?;
    let mask = RawRef::<i8>::new(mask, "mask", "int8")?;
    let uniforms = RawRef::<f32>::new(uniforms, "uniforms", "float32")?;
    let rows = uniforms.len;
    let mut actions = RawMut::<i64>::new(actions, rows, "actions")?;
    let mut logprobs = RawMut::<f32>::new(logprobs, rows, "logprobs")?;
    let mut values = RawMut::<f32>::new(values, rows, "values")?;
    for input in [&obs, &uniforms] {
        input.check_apart(&actions, "actions")?;
        input.check_apart(&logprobs, "logprobs")?;
        input.check_apart(&values, "values")?;
    }
    mask.check_apart(&actions, "actions")?;
    mask.check_apart(&logprobs, "logprobs")?;
    mask.check_apart(&values, "values")?;
    actions.check_apart_from(&logprobs)?;
    actions.check_apart_from(&values)?;
    logprobs.check_apart_from(&values)?;
    let (value, scorer_bias, layers) = (w.value(), w.scorer_bias(), &w.layers);
    py.allow_threads(move || {
        sample(layers, scorer_bias, &value, window, obs.slice(), mask.slice(), uniforms.slice(),
               actions.slice(), logprobs.slice(), values.slice())
    })
    .map_err(to_py)
}
