//! The `place` policy's per-host layers for training: forward and backward, fused.
//!
//! In `PlacePolicy` (app/training/policy.py) every host goes through the host encoder
//! `e = relu(W1 x + b1)` and the scorer `z = relu(Ws e + share)`, then `logit = wo . z + bo`;
//! the value head reads the hosts' mean `e`. PyTorch computes this one layer at a time over
//! `[rows, hosts, hidden]` tensors, and its backward writes and re-reads several more of
//! them: on a CPU, that memory traffic is what a PPO update costs. Here a host's vectors stay
//! in registers (the width a compile-time constant, as in place_net.rs); the backward pass
//! recomputes them instead of storing them, and accumulates the weight gradients per run of
//! rows.
//!
//! The job's side (its encoder, its share of the score) is left to PyTorch: it is one vector
//! per row, cheap there, and its gradient arrives here as the gradient of `share`.
//!
//! Gradients are summed in runs of `ROWS_PER_TASK` rows, then the runs in order, whatever the
//! number of threads: the same inputs give the same bits, which a resumed training run needs.

use rayon::prelude::*;

use crate::error::{SimError, SimResult};
use crate::envs::place_env::HOST_FEATURES;
use crate::nn::place_net::{
    avx_fma_available, axpy, check, host_inputs, padded, relu, rows_and_hosts, transpose_padded,
    width_for, HOST_INPUTS, MASKED_LOGIT,
};

/// Rows summed together before the runs are summed: fixed, so the result does not depend
/// on how rayon splits the work.
const ROWS_PER_TASK: usize = 32;
/// Forward passes of fewer rows run on the calling thread (see `forward`).
const SEQUENTIAL_BELOW: usize = 512;

/// The per-host layers' weights, padded to `width` (zeros beyond `hidden`, which add exact
/// zeros). `ws` is kept both ways: by input for the forward pass, by output for the backward.
#[derive(Debug, Clone)]
pub struct HostLayers {
    hidden: usize,
    width: usize,
    w1_by_input: Vec<f32>,
    b1: Vec<f32>,
    ws_by_input: Vec<f32>,
    ws_by_output: Vec<f32>,
    wo: Vec<f32>,
    bo: f32,
    avx_fma: bool,
}

/// Gradients of the per-host layers' weights, laid out as PyTorch holds them (`[out][in]`).
#[derive(Debug, Clone, PartialEq)]
pub struct HostLayerGrads {
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub ws: Vec<f32>,
    pub wo: Vec<f32>,
    pub bo: f32,
}

/// One run of rows' share of the weight gradients, padded as the weights are.
struct Sums {
    w1_by_input: Vec<f32>,
    b1: Vec<f32>,
    ws_by_input: Vec<f32>,
    wo: Vec<f32>,
    bo: f32,
}

impl Sums {
    fn zeros(width: usize) -> Self {
        Self {
            w1_by_input: vec![0.0; HOST_INPUTS * width],
            b1: vec![0.0; width],
            ws_by_input: vec![0.0; width * width],
            wo: vec![0.0; width],
            bo: 0.0,
        }
    }

    fn add(&mut self, other: &Sums) {
        let pairs = [
            (&mut self.w1_by_input, &other.w1_by_input),
            (&mut self.b1, &other.b1),
            (&mut self.ws_by_input, &other.ws_by_input),
            (&mut self.wo, &other.wo),
        ];
        for (a, b) in pairs {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.bo += other.bo;
    }
}

/// A checked batch: its rows, hosts per row, observation values per row, and `share` padded
/// to the width.
struct Batch {
    rows: usize,
    hosts: usize,
    dim: usize,
    share: Vec<f32>,
}

/// A run of rows' observations, masks and shares, then their logits and pooled outputs.
type ForwardChunk<'a> = (
    (((&'a [f32], &'a [i8]), &'a [f32]), &'a mut [f32]),
    &'a mut [f32],
);

/// One row's inputs and outputs for the forward pass.
struct ForwardRow<'a> {
    obs: &'a [f32],
    mask: &'a [i8],
    share: &'a [f32],
    logits: &'a mut [f32],
    pooled: &'a mut [f32],
}

/// One row's inputs and outputs for the backward pass, and the sums it adds to.
struct BackwardRow<'a, 's> {
    obs: &'a [f32],
    mask: &'a [i8],
    share: &'a [f32],
    g_logits: &'a [f32],
    g_pooled: &'a [f32],
    g_share: &'a mut [f32],
    sums: &'s mut Sums,
}

/// A pass over one row, compiled once per width and code path (`HostLayers::run_row`).
trait RowPass {
    fn run<const W: usize, const FMA: bool>(self, layers: &HostLayers);
}

impl RowPass for ForwardRow<'_> {
    #[inline(always)]
    fn run<const W: usize, const FMA: bool>(self, layers: &HostLayers) {
        layers.forward_w::<W, FMA>(self)
    }
}

impl RowPass for BackwardRow<'_, '_> {
    #[inline(always)]
    fn run<const W: usize, const FMA: bool>(self, layers: &HostLayers) {
        layers.backward_w::<W, FMA>(self)
    }
}

impl HostLayers {
    /// Weights as PyTorch holds them: `w1` `[hidden][6]`, `b1` `[hidden]`, `ws` `[hidden][hidden]`,
    /// `wo` `[hidden]`; the hidden size is `b1`'s length.
    pub fn new(w1: &[f32], b1: &[f32], ws: &[f32], wo: &[f32], bo: f32) -> SimResult<Self> {
        let h = b1.len();
        if h == 0 {
            return Err(SimError::InvalidConfig(
                "hidden size must be positive".into(),
            ));
        }
        let width = width_for(h)?;
        check("host_encoder.weight", w1, h * HOST_INPUTS)?;
        check("host_encoder.bias", b1, h)?;
        check("score_host.weight", ws, h * h)?;
        check("score_out.weight", wo, h)?;
        check("score_out.bias", &[bo], 1)?;
        Ok(Self {
            hidden: h,
            width,
            w1_by_input: transpose_padded(w1, h, HOST_INPUTS, HOST_INPUTS, width),
            b1: padded(b1, width),
            ws_by_input: transpose_padded(ws, h, h, width, width),
            ws_by_output: rows_padded(ws, h, width),
            wo: padded(wo, width),
            bo,
            avx_fma: avx_fma_available(),
        })
    }

    /// A batch's shape, every buffer checked against it (`share` and the per-row buffers
    /// named in `per_row` hold `hidden` values per row, `logits` one per host), and `share`
    /// padded to the width: the kernels then read and write whole vectors (a copy of
    /// `hidden` values into a wider one vectorises badly inside them).
    fn batch(
        &self,
        obs: &[f32],
        masks: &[i8],
        share: &[f32],
        per_row: &[(&str, usize)],
    ) -> SimResult<Batch> {
        let (rows, hosts) = rows_and_hosts(obs, masks)?;
        for &(name, len) in [("share", share.len())].iter().chain(per_row) {
            let want = if name.contains("logits") {
                rows * hosts
            } else {
                rows * self.hidden
            };
            if len != want {
                return Err(SimError::InvalidConfig(format!(
                    "{name} holds {len} values; {rows} rows of {hosts} hosts and hidden size {} need {want}",
                    self.hidden
                )));
            }
        }
        Ok(Batch {
            rows,
            hosts,
            dim: obs.len() / rows,
            share: pad_rows(share, self.hidden, self.width),
        })
    }

    /// Masked logits (`[rows][hosts]`, masked hosts at `MASKED_LOGIT`) and each row's mean host
    /// embedding (`pooled`, `[rows][hidden]`) of a batch; `share` (`[rows][hidden]`) is the
    /// job's part of the scorer's input, bias included.
    pub fn forward(
        &self,
        obs: &[f32],
        masks: &[i8],
        share: &[f32],
        logits: &mut [f32],
        pooled: &mut [f32],
    ) -> SimResult<()> {
        let Batch {
            rows,
            hosts,
            dim,
            share,
        } = self.batch(
            obs,
            masks,
            share,
            &[("logits", logits.len()), ("pooled", pooled.len())],
        )?;
        let (h, width) = (self.hidden, self.width);
        let mut pooled_padded = vec![0.0f32; rows * width];
        let run = |((((o, m), s), l), p): ForwardChunk<'_>| {
            let rows = o
                .chunks(dim)
                .zip(m.chunks(hosts))
                .zip(s.chunks(width))
                .zip(l.chunks_mut(hosts))
                .zip(p.chunks_mut(width));
            for ((((obs, mask), share), logits), pooled) in rows {
                self.run_row(ForwardRow {
                    obs,
                    mask,
                    share,
                    logits,
                    pooled,
                });
            }
        };
        let chunk = |n: usize| n * ROWS_PER_TASK;
        if rows < SEQUENTIAL_BELOW {
            // A rollout step's batch: waking rayon's threads costs more than it saves.
            obs.chunks(chunk(dim))
                .zip(masks.chunks(chunk(hosts)))
                .zip(share.chunks(chunk(width)))
                .zip(logits.chunks_mut(chunk(hosts)))
                .zip(pooled_padded.chunks_mut(chunk(width)))
                .for_each(run);
        } else {
            obs.par_chunks(chunk(dim))
                .zip(masks.par_chunks(chunk(hosts)))
                .zip(share.par_chunks(chunk(width)))
                .zip(logits.par_chunks_mut(chunk(hosts)))
                .zip(pooled_padded.par_chunks_mut(chunk(width)))
                .for_each(run);
        }
        unpad_rows(&pooled_padded, pooled, h, width);
        Ok(())
    }

    /// Gradients of the weights (returned) and of `share` (written into `g_share`) given the
    /// gradients of the logits and of `pooled`. A masked host's logit gradient is ignored, as
    /// `masked_fill` ignores it.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        obs: &[f32],
        masks: &[i8],
        share: &[f32],
        g_logits: &[f32],
        g_pooled: &[f32],
        g_share: &mut [f32],
    ) -> SimResult<HostLayerGrads> {
        let Batch {
            rows,
            hosts,
            dim,
            share,
        } = self.batch(
            obs,
            masks,
            share,
            &[
                ("g_logits", g_logits.len()),
                ("g_pooled", g_pooled.len()),
                ("g_share", g_share.len()),
            ],
        )?;
        let (h, width) = (self.hidden, self.width);
        let g_pooled = pad_rows(g_pooled, h, width);
        let mut g_share_padded = vec![0.0f32; rows * width];
        let runs: Vec<Sums> = obs
            .par_chunks(dim * ROWS_PER_TASK)
            .zip(masks.par_chunks(hosts * ROWS_PER_TASK))
            .zip(share.par_chunks(width * ROWS_PER_TASK))
            .zip(g_logits.par_chunks(hosts * ROWS_PER_TASK))
            .zip(g_pooled.par_chunks(width * ROWS_PER_TASK))
            .zip(g_share_padded.par_chunks_mut(width * ROWS_PER_TASK))
            .map(|(((((o, m), s), gl), gp), gs)| {
                let mut sums = Sums::zeros(width);
                let rows = o
                    .chunks(dim)
                    .zip(m.chunks(hosts))
                    .zip(s.chunks(width))
                    .zip(gl.chunks(hosts))
                    .zip(gp.chunks(width))
                    .zip(gs.chunks_mut(width));
                for (((((obs, mask), share), g_logits), g_pooled), g_share) in rows {
                    let sums = &mut sums;
                    self.run_row(BackwardRow {
                        obs,
                        mask,
                        share,
                        g_logits,
                        g_pooled,
                        g_share,
                        sums,
                    });
                }
                sums
            })
            .collect();
        unpad_rows(&g_share_padded, g_share, h, width);
        let mut total = Sums::zeros(width);
        for run in &runs {
            total.add(run);
        }
        // Back to PyTorch's [out][in] layout, the padding dropped.
        let unpad = |by_input: &[f32], inputs: usize| -> Vec<f32> {
            (0..h)
                .flat_map(|o| (0..inputs).map(move |i| by_input[i * width + o]))
                .collect()
        };
        Ok(HostLayerGrads {
            w1: unpad(&total.w1_by_input, HOST_INPUTS),
            b1: total.b1[..h].to_vec(),
            ws: unpad(&total.ws_by_input, h),
            wo: total.wo[..h].to_vec(),
            bo: total.bo,
        })
    }

    fn run_row<P: RowPass>(&self, pass: P) {
        #[cfg(target_arch = "x86_64")]
        if self.avx_fma {
            // Safety: the CPU was checked for AVX and FMA when the layers were built.
            return unsafe { self.run_row_avx_fma(pass) };
        }
        self.run_row_at::<P, false>(pass)
    }

    /// The same code compiled for 8-wide vectors and fused multiply-adds, chosen at run time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx,fma")]
    unsafe fn run_row_avx_fma<P: RowPass>(&self, pass: P) {
        self.run_row_at::<P, true>(pass)
    }

    #[inline(always)]
    fn run_row_at<P: RowPass, const FMA: bool>(&self, pass: P) {
        match self.width {
            8 => pass.run::<8, FMA>(self),
            16 => pass.run::<16, FMA>(self),
            32 => pass.run::<32, FMA>(self),
            64 => pass.run::<64, FMA>(self),
            _ => pass.run::<128, FMA>(self),
        }
    }

    /// A host's embedding `e = relu(W1 x + b1)`.
    #[inline(always)]
    fn encode<const W: usize, const FMA: bool>(&self, x: &[f32; HOST_INPUTS]) -> [f32; W] {
        let mut e: [f32; W] = self.b1.as_slice().try_into().expect("padded to the width");
        let w1: &[[f32; W]; HOST_INPUTS] = self
            .w1_by_input
            .as_chunks::<W>()
            .0
            .try_into()
            .expect("6 rows");
        for i in 0..HOST_INPUTS {
            axpy::<W, FMA>(&mut e, x[i], &w1[i]);
        }
        relu(&mut e);
        e
    }

    /// The scorer's hidden vector `z = relu(Ws e + share)`.
    #[inline(always)]
    fn score<const W: usize, const FMA: bool>(&self, e: &[f32; W], share: &[f32; W]) -> [f32; W] {
        // From zero, `share` added last: started from a copy of `share`, the compiler
        // moved the vectors around in pairs of lanes (a measured 15-20% slower).
        let mut z = matvec::<W, FMA>(e, self.ws_by_input.as_chunks::<W>().0);
        for k in 0..W {
            z[k] += share[k];
        }
        relu(&mut z);
        z
    }

    /// `score` of two hosts at once, each with the same operations in the same order.
    #[inline(always)]
    fn score_pair<const W: usize, const FMA: bool>(
        &self,
        a: &[f32; W],
        b: &[f32; W],
        share: &[f32; W],
    ) -> ([f32; W], [f32; W]) {
        let (mut za, mut zb) = matvec_pair::<W, FMA>(a, b, self.ws_by_input.as_chunks::<W>().0);
        for k in 0..W {
            za[k] += share[k];
            zb[k] += share[k];
        }
        relu(&mut za);
        relu(&mut zb);
        (za, zb)
    }

    #[inline(always)]
    fn forward_w<const W: usize, const FMA: bool>(&self, row: ForwardRow<'_>) {
        let ForwardRow {
            obs,
            mask,
            share,
            logits,
            pooled,
        } = row;
        let hosts = mask.len();
        let share: &[f32; W] = share.try_into().expect("padded to the width");
        let wo: [f32; W] = self.wo.as_slice().try_into().expect("padded to the width");
        let mut sum = [0.0f32; W];
        let features = obs[..hosts * HOST_FEATURES].as_chunks::<HOST_FEATURES>().0;
        let logit_of = |z: &[f32; W]| halving_dot(z, &wo) + self.bo;
        // Narrow vectors leave registers idle in one host's scorer: two hosts at a time
        // share its weight loads and interleave their multiply-adds.
        let pairs = if W <= 16 { hosts / 2 } else { 0 };
        let (paired, single) = features.split_at(2 * pairs);
        for ((f, allowed), logit) in paired
            .as_chunks::<2>()
            .0
            .iter()
            .zip(mask.as_chunks::<2>().0)
            .zip(logits.as_chunks_mut::<2>().0)
        {
            let (a, b) = (
                self.encode::<W, FMA>(&host_inputs(&f[0])),
                self.encode::<W, FMA>(&host_inputs(&f[1])),
            );
            for k in 0..W {
                sum[k] += a[k];
            }
            for k in 0..W {
                sum[k] += b[k];
            }
            if allowed == &[0, 0] {
                *logit = [MASKED_LOGIT; 2];
                continue;
            }
            let (za, zb) = self.score_pair::<W, FMA>(&a, &b, share);
            for ((logit, &allowed), z) in logit.iter_mut().zip(allowed).zip([za, zb]) {
                *logit = if allowed == 0 {
                    MASKED_LOGIT
                } else {
                    logit_of(&z)
                };
            }
        }
        let rest = mask[2 * pairs..].iter().zip(&mut logits[2 * pairs..]);
        for (f, (&allowed, logit)) in single.iter().zip(rest) {
            let e = self.encode::<W, FMA>(&host_inputs(f));
            for k in 0..W {
                sum[k] += e[k];
            }
            // Every host feeds the value head's mean; only allowed ones need a score.
            *logit = if allowed == 0 {
                MASKED_LOGIT
            } else {
                logit_of(&self.score::<W, FMA>(&e, share))
            };
        }
        let scale = 1.0 / hosts as f32;
        let pooled: &mut [f32; W] = pooled.try_into().expect("padded to the width");
        for k in 0..W {
            pooled[k] = sum[k] * scale;
        }
    }

    #[inline(always)]
    fn backward_w<const W: usize, const FMA: bool>(&self, row: BackwardRow<'_, '_>) {
        let sums = row.sums;
        let hosts = row.mask.len();
        let share: &[f32; W] = row.share.try_into().expect("padded to the width");
        let wo: [f32; W] = self.wo.as_slice().try_into().expect("padded to the width");
        let ws_by_output = self.ws_by_output.as_chunks::<W>().0;
        // d pooled / d e is 1/hosts for every host.
        let g_pooled: &[f32; W] = row.g_pooled.try_into().expect("padded to the width");
        let mut g_mean = [0.0f32; W];
        for k in 0..W {
            g_mean[k] = g_pooled[k] / hosts as f32;
        }
        let mut g_share = [0.0f32; W];
        let w1_sums = sums.w1_by_input.as_chunks_mut::<W>().0;
        let ws_sums = sums.ws_by_input.as_chunks_mut::<W>().0;
        let b1_sums: &mut [f32; W] = sums.b1.as_mut_slice().try_into().expect("padded");
        let wo_sums: &mut [f32; W] = sums.wo.as_mut_slice().try_into().expect("padded");
        let features = row.obs[..hosts * HOST_FEATURES]
            .as_chunks::<HOST_FEATURES>()
            .0;
        for ((f, &allowed), &g_logit) in features.iter().zip(row.mask).zip(row.g_logits) {
            let x = host_inputs(f);
            let e = self.encode::<W, FMA>(&x);
            let mut g_e = g_mean;
            if allowed != 0 && g_logit != 0.0 {
                let z = self.score::<W, FMA>(&e, share);
                sums.bo += g_logit;
                axpy::<W, FMA>(wo_sums, g_logit, &z);
                let mut g_z = [0.0f32; W];
                for k in 0..W {
                    g_z[k] = if z[k] > 0.0 { g_logit * wo[k] } else { 0.0 };
                    g_share[k] += g_z[k];
                }
                for (ei, sum) in e.iter().zip(ws_sums.iter_mut()) {
                    axpy::<W, FMA>(sum, *ei, &g_z);
                }
                let back = matvec::<W, FMA>(&g_z, ws_by_output);
                for k in 0..W {
                    g_e[k] += back[k];
                }
            }
            for k in 0..W {
                g_e[k] = if e[k] > 0.0 { g_e[k] } else { 0.0 };
                b1_sums[k] += g_e[k];
            }
            for (xi, sum) in x.iter().zip(w1_sums.iter_mut()) {
                axpy::<W, FMA>(sum, *xi, &g_e);
            }
        }
        let out: &mut [f32; W] = row.g_share.try_into().expect("padded to the width");
        *out = g_share;
    }
}

/// A square `[h][h]` matrix with each row padded to `width` and zero rows up to `width`.
pub(crate) fn rows_padded(w: &[f32], h: usize, width: usize) -> Vec<f32> {
    let mut p = vec![0.0; width * width];
    for (row, src) in p.chunks_mut(width).zip(w.chunks(h)) {
        row[..h].copy_from_slice(src);
    }
    p
}

/// `sum_i x[i] * rows[i]` in two interleaved partial sums: one running sum would make each
/// multiply-add wait for the one before it, a chain of `W` latencies per host (two sums were
/// 10-20% faster than one, four no faster than two).
#[inline(always)]
pub(crate) fn matvec<const W: usize, const FMA: bool>(x: &[f32; W], rows: &[[f32; W]]) -> [f32; W] {
    let (mut even, mut odd) = ([0.0f32; W], [0.0f32; W]);
    for (pair, w) in x.as_chunks::<2>().0.iter().zip(rows.as_chunks::<2>().0) {
        axpy::<W, FMA>(&mut even, pair[0], &w[0]);
        axpy::<W, FMA>(&mut odd, pair[1], &w[1]);
    }
    for k in 0..W {
        even[k] += odd[k];
    }
    even
}

/// `matvec` of two vectors over the same rows: each row loaded once for both.
#[inline(always)]
fn matvec_pair<const W: usize, const FMA: bool>(
    x: &[f32; W],
    y: &[f32; W],
    rows: &[[f32; W]],
) -> ([f32; W], [f32; W]) {
    let (mut x_even, mut x_odd) = ([0.0f32; W], [0.0f32; W]);
    let (mut y_even, mut y_odd) = ([0.0f32; W], [0.0f32; W]);
    let pairs = x.as_chunks::<2>().0.iter().zip(y.as_chunks::<2>().0);
    for ((xp, yp), w) in pairs.zip(rows.as_chunks::<2>().0) {
        axpy::<W, FMA>(&mut x_even, xp[0], &w[0]);
        axpy::<W, FMA>(&mut y_even, yp[0], &w[0]);
        axpy::<W, FMA>(&mut x_odd, xp[1], &w[1]);
        axpy::<W, FMA>(&mut y_odd, yp[1], &w[1]);
    }
    for k in 0..W {
        x_even[k] += x_odd[k];
        y_even[k] += y_odd[k];
    }
    (x_even, y_even)
}

/// A dot product summed by halves, each step over whole vectors (place_net's 8-lane `dot`
/// compiled to pairs of lanes here, a measured 15-20% slower forward pass).
#[inline(always)]
pub(crate) fn halving_dot<const W: usize>(a: &[f32; W], b: &[f32; W]) -> f32 {
    let mut t = [0.0f32; W];
    for k in 0..W {
        t[k] = a[k] * b[k];
    }
    let mut n = W;
    while n > 1 {
        n /= 2;
        for k in 0..n {
            t[k] += t[k + n];
        }
    }
    t[0]
}

/// Rows of `h` values, each zero-padded to `width`.
pub(crate) fn pad_rows(v: &[f32], h: usize, width: usize) -> Vec<f32> {
    let mut p = vec![0.0f32; v.len() / h * width];
    for (dst, src) in p.chunks_mut(width).zip(v.chunks(h)) {
        dst[..h].copy_from_slice(src);
    }
    p
}

/// The first `h` values of each padded row.
pub(crate) fn unpad_rows(padded: &[f32], out: &mut [f32], h: usize, width: usize) {
    for (dst, src) in out.chunks_mut(h).zip(padded.chunks(width)) {
        dst.copy_from_slice(&src[..h]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::place_net::tests::{batch, random};
    use crate::nn::place_net::PlaceNet;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    struct Case {
        layers: HostLayers,
        w: [Vec<f32>; 4],
        bo: f32,
        obs: Vec<f32>,
        masks: Vec<i8>,
        share: Vec<f32>,
        hosts: usize,
    }

    fn case(hidden: usize, rows: usize, hosts: usize, seed: u64) -> Case {
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        let h = hidden;
        let w = [
            random(rng, h * HOST_INPUTS),
            random(rng, h),
            random(rng, h * h),
            random(rng, h),
        ];
        let bo = rng.gen_range(-1.0..1.0);
        let (obs, masks) = batch(rows, hosts, seed);
        let share = random(rng, rows * h);
        let layers = HostLayers::new(&w[0], &w[1], &w[2], &w[3], bo).unwrap();
        Case {
            layers,
            w,
            bo,
            obs,
            masks,
            share,
            hosts,
        }
    }

    /// The loss `sum(c_logit * logit over allowed hosts) + sum(c_pooled * pooled)` in f64,
    /// straight from the definition, for finite differences.
    fn loss(
        c: &Case,
        w: &[Vec<f32>; 4],
        bo: f32,
        share: &[f32],
        c_logit: &[f64],
        c_pooled: &[f64],
    ) -> f64 {
        let (h, hosts) = (w[1].len(), c.hosts);
        let dim = PlaceNet::obs_dim(hosts);
        let rows = c.masks.len() / hosts;
        let mut total = 0.0;
        for r in 0..rows {
            let mut pooled = vec![0.0f64; h];
            for i in 0..hosts {
                let f: &[f32; 4] = c.obs[r * dim + i * 4..r * dim + i * 4 + 4]
                    .try_into()
                    .unwrap();
                let x = host_inputs(f).map(|v| v as f64);
                let e: Vec<f64> = (0..h)
                    .map(|o| {
                        (w[1][o] as f64
                            + (0..HOST_INPUTS)
                                .map(|k| w[0][o * HOST_INPUTS + k] as f64 * x[k])
                                .sum::<f64>())
                        .max(0.0)
                    })
                    .collect();
                for o in 0..h {
                    pooled[o] += e[o] / hosts as f64;
                }
                if c.masks[r * hosts + i] != 0 {
                    let logit = bo as f64
                        + (0..h)
                            .map(|o| {
                                let z = share[r * h + o] as f64
                                    + (0..h).map(|k| w[2][o * h + k] as f64 * e[k]).sum::<f64>();
                                w[3][o] as f64 * z.max(0.0)
                            })
                            .sum::<f64>();
                    total += c_logit[r * hosts + i] * logit;
                }
            }
            total += (0..h).map(|o| c_pooled[r * h + o] * pooled[o]).sum::<f64>();
        }
        total
    }

    #[test]
    fn forward_matches_the_definition() {
        // Widths 16 (hosts scored in pairs, an odd one alone) and 64 (one at a time).
        for h in [13, 40] {
            forward_matches_the_definition_at(h);
        }
    }

    fn forward_matches_the_definition_at(h: usize) {
        let rows = 70;
        let c = case(h, rows, 9, 3);
        let mut logits = vec![0.0; rows * c.hosts];
        let mut pooled = vec![0.0; rows * h];
        c.layers
            .forward(&c.obs, &c.masks, &c.share, &mut logits, &mut pooled)
            .unwrap();
        let close = |got: f32, want: f64| {
            assert!(
                (got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{got} vs {want}"
            )
        };
        // Each output is the loss with a coefficient of one on it and zero elsewhere.
        for r in [0, 1, 33, 69] {
            for i in 0..c.hosts {
                let at = r * c.hosts + i;
                let mut one = vec![0.0; rows * c.hosts];
                one[at] = 1.0;
                match c.masks[at] {
                    0 => assert_eq!(logits[at], MASKED_LOGIT),
                    _ => close(
                        logits[at],
                        loss(&c, &c.w, c.bo, &c.share, &one, &vec![0.0; rows * h]),
                    ),
                }
            }
            for o in 0..h {
                let mut one = vec![0.0; rows * h];
                one[r * h + o] = 1.0;
                close(
                    pooled[r * h + o],
                    loss(&c, &c.w, c.bo, &c.share, &vec![0.0; rows * c.hosts], &one),
                );
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (hidden, rows, avx_fma) in [
            (5, 3, false),
            (16, 40, avx_fma_available()),
            (16, 40, false),
            (40, 2, avx_fma_available()),
        ] {
            let mut c = case(hidden, rows, 6, hidden as u64);
            c.layers.avx_fma = avx_fma;
            let rng = &mut ChaCha8Rng::seed_from_u64(7);
            let c_logit: Vec<f64> = (0..rows * c.hosts)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let c_pooled: Vec<f64> = (0..rows * hidden)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let g_logits: Vec<f32> = c_logit.iter().map(|&v| v as f32).collect();
            let g_pooled: Vec<f32> = c_pooled.iter().map(|&v| v as f32).collect();
            let mut g_share = vec![0.0; rows * hidden];
            let grads = c
                .layers
                .backward(
                    &c.obs,
                    &c.masks,
                    &c.share,
                    &g_logits,
                    &g_pooled,
                    &mut g_share,
                )
                .unwrap();
            // Central differences: what moves is weight tensor `t`'s element `j` (t < 4),
            // the output bias (t == 4) or share[j] (t == 5).
            let eps = 1e-4f32;
            let moved = |t: usize, j: usize, d: f32| {
                let (mut w, mut bo, mut share) = (c.w.clone(), c.bo, c.share.clone());
                match t {
                    0..=3 => w[t][j] += d,
                    4 => bo += d,
                    _ => share[j] += d,
                }
                loss(&c, &w, bo, &share, &c_logit, &c_pooled)
            };
            let numeric = |t, j| (moved(t, j, eps) - moved(t, j, -eps)) / (2.0 * eps as f64);
            let close = |got: f32, want: f64, what: &str| {
                assert!(
                    (got as f64 - want).abs() <= 2e-2 * want.abs().max(1.0),
                    "hidden {hidden} {what}: {got} vs {want}"
                );
            };
            let got = [&grads.w1, &grads.b1, &grads.ws, &grads.wo];
            for (t, g) in got.iter().enumerate() {
                for j in (0..g.len()).step_by(3) {
                    close(g[j], numeric(t, j), &format!("weight {t}[{j}]"));
                }
            }
            close(grads.bo, numeric(4, 0), "bo");
            for j in (0..g_share.len()).step_by(7) {
                close(g_share[j], numeric(5, j), &format!("share[{j}]"));
            }
        }
    }

    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        let c = case(16, 300, 64, 11);
        let g_logits = vec![0.25; 300 * 64];
        let g_pooled = vec![-0.5; 300 * 16];
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut g_share = vec![0.0; 300 * 16];
            let g = pool.install(|| {
                c.layers
                    .backward(
                        &c.obs,
                        &c.masks,
                        &c.share,
                        &g_logits,
                        &g_pooled,
                        &mut g_share,
                    )
                    .unwrap()
            });
            (g, g_share)
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn rejects_buffers_and_weights_of_the_wrong_shape() {
        let c = case(16, 4, 8, 1);
        let mut logits = vec![0.0; 32];
        let mut pooled = vec![0.0; 64];
        let err = c
            .layers
            .forward(&c.obs, &c.masks, &c.share[1..], &mut logits, &mut pooled)
            .unwrap_err();
        assert!(err.to_string().contains("share holds 63 values"), "{err}");
        assert!(c
            .layers
            .forward(&c.obs, &c.masks, &c.share, &mut logits[1..], &mut pooled)
            .is_err());
        let mut g_share = vec![0.0; 64];
        assert!(c
            .layers
            .backward(
                &c.obs,
                &c.masks,
                &c.share,
                &logits,
                &pooled[1..],
                &mut g_share
            )
            .is_err());
        assert!(HostLayers::new(&c.w[0][1..], &c.w[1], &c.w[2], &c.w[3], 0.0).is_err());
        assert!(HostLayers::new(&c.w[0], &c.w[1], &c.w[2], &c.w[3], f32::NAN).is_err());
        assert!(HostLayers::new(&[], &[], &[], &[], 0.0).is_err());
    }
}
