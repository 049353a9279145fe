//! The fused policy layers (src/nn/): the `place` policy's `PlaceNet` for inference and
//! `PlaceHostLayers` for training, fed PyTorch's weights by name, and `EntityLayers`, which
//! the `pick` and `hierarchical` policies train through.

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::nn::entity_train::{Entities, EntityLayers as CoreEntityLayers};
use crate::nn::place_net::{PlaceNet as CorePlaceNet, PlaceWeights};
use crate::nn::place_train::HostLayers;
use crate::python::buffers::{RawMut, RawRef};
use crate::python::errors::{to_py, ConfigError};

/// Weight names of the place policy's fused forward pass, as in PyTorch's state_dict.
const PLACE_NET_WEIGHTS: [&str; 11] = [
    "host_encoder.weight", "host_encoder.bias", "job_encoder.0.weight", "job_encoder.0.bias",
    "job_encoder.2.weight", "job_encoder.2.bias", "score_host.weight", "score_host.bias",
    "score_job.weight", "score_out.weight", "score_out.bias",
];

/// The `place` policy's forward pass, fused (place_net.rs): inference without PyTorch.
#[pyclass(module = "simrs._simrs")]
pub(crate) struct PlaceNet {
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
pub(crate) struct PlaceHostLayers {
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

/// The per-entity layers the `pick` and `hierarchical` policies train through, forward and
/// backward, fused (entity_train.rs). Built from the current weights for one forward and
/// its backward.
#[pyclass(module = "simrs._simrs")]
pub(crate) struct EntityLayers {
    inner: CoreEntityLayers,
}

/// Packed entities from Python: inputs, row offsets, pooled weights and scored flags.
struct PackedArgs {
    x: RawRef<f32>,
    offsets: RawRef<i64>,
    weight: RawRef<f32>,
    scored: RawRef<i8>,
}

impl PackedArgs {
    fn new(x: &PyAny, offsets: &PyAny, weight: &PyAny, scored: &PyAny) -> PyResult<Self> {
        Ok(Self {
            x: RawRef::new(x, "x", "float32")?,
            offsets: RawRef::new(offsets, "offsets", "int64")?,
            weight: RawRef::new(weight, "weight", "float32")?,
            scored: RawRef::new(scored, "scored", "int8")?,
        })
    }

    fn check_apart<U: pyo3::buffer::Element>(&self, out: &RawMut<U>, what: &str) -> PyResult<()> {
        self.x.check_apart(out, what)?;
        self.offsets.check_apart(out, what)?;
        self.weight.check_apart(out, what)?;
        self.scored.check_apart(out, what)
    }

    fn entities(&self) -> Entities<'_> {
        Entities {
            x: self.x.slice(),
            offsets: self.offsets.slice(),
            weight: self.weight.slice(),
            scored: self.scored.slice(),
        }
    }
}

#[pymethods]
impl EntityLayers {
    /// float32 arrays as PyTorch holds them: `w1` (hidden x inputs), `b1`, `w2` and `ws`
    /// (hidden x hidden), `b2`, `wo`; `bo` a float.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(w1: &PyAny, b1: &PyAny, w2: &PyAny, b2: &PyAny, ws: &PyAny, wo: &PyAny, bo: f32)
           -> PyResult<Self> {
        let get = |v: &PyAny, name: &str| RawRef::<f32>::new(v, name, "float32");
        let (w1, b1, w2, b2) = (get(w1, "w1")?, get(b1, "b1")?, get(w2, "w2")?, get(b2, "b2")?);
        let (ws, wo) = (get(ws, "ws")?, get(wo, "wo")?);
        let inner = CoreEntityLayers::new(w1.slice(), b1.slice(), w2.slice(), b2.slice(),
                                          ws.slice(), wo.slice(), bo)
            .map_err(to_py)?;
        Ok(Self { inner })
    }

    /// Writes each entity's logit (0 where `scored` is 0) into `logits` and each row's
    /// weighted sum of entity embeddings into `pooled` (rows x hidden); row `r`'s entities
    /// are `offsets[r]..offsets[r + 1]` of `x` (entities x inputs).
    #[allow(clippy::too_many_arguments)]
    fn forward(&self, py: Python<'_>, x: &PyAny, offsets: &PyAny, weight: &PyAny,
               scored: &PyAny, share: &PyAny, logits: &PyAny, pooled: &PyAny) -> PyResult<()> {
        let packed = PackedArgs::new(x, offsets, weight, scored)?;
        let share = RawRef::<f32>::new(share, "share", "float32")?;
        let mut logits = RawMut::<f32>::new(logits, packed.scored.len, "logits")?;
        let n = PyBuffer::<f32>::get(pooled).map(|b| b.item_count()).unwrap_or(0);
        let mut pooled = RawMut::<f32>::new(pooled, n, "pooled")?;
        for out in [&logits, &pooled] {
            packed.check_apart(out, "the outputs")?;
            share.check_apart(out, "the outputs")?;
        }
        logits.check_apart_from(&pooled)?;
        let layers = &self.inner;
        py.allow_threads(move || {
            layers.forward(packed.entities(), share.slice(), logits.slice(), pooled.slice())
        })
        .map_err(to_py)
    }

    /// Writes the gradient of `share` into `g_share` and returns the weights' gradients as
    /// lists in PyTorch's layout: `(w1, b1, w2, b2, ws, wo, bo)`.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn backward(&self, py: Python<'_>, x: &PyAny, offsets: &PyAny, weight: &PyAny,
                scored: &PyAny, share: &PyAny, g_logits: &PyAny, g_pooled: &PyAny,
                g_share: &PyAny)
                -> PyResult<(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, f32)> {
        let packed = PackedArgs::new(x, offsets, weight, scored)?;
        let share = RawRef::<f32>::new(share, "share", "float32")?;
        let g_logits = RawRef::<f32>::new(g_logits, "g_logits", "float32")?;
        let g_pooled = RawRef::<f32>::new(g_pooled, "g_pooled", "float32")?;
        let mut g_share = RawMut::<f32>::new(g_share, share.len, "g_share")?;
        packed.check_apart(&g_share, "g_share")?;
        for input in [&share, &g_logits, &g_pooled] {
            input.check_apart(&g_share, "g_share")?;
        }
        let layers = &self.inner;
        let g = py
            .allow_threads(move || {
                layers.backward(packed.entities(), share.slice(), g_logits.slice(),
                                g_pooled.slice(), g_share.slice())
            })
            .map_err(to_py)?;
        Ok((g.w1, g.b1, g.w2, g.b2, g.ws, g.wo, g.bo))
    }
}
