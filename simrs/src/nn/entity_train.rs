//! Per-entity layers for training the `pick` and `hierarchical` policies: forward and
//! backward, fused.
//!
//! Both policies score entities (a window's queued jobs, a cluster's hosts) with one shared
//! network: a two-layer encoder `a = relu(W1 x + b1)`, `e = relu(W2 a + b2)`, a scorer
//! `z = relu(Ws e + share)` and `logit = wo . z + bo`, where `share` is one vector per row
//! (the scorer's bias, plus the chosen job's part in the hierarchical host head); the value
//! head reads each row's weighted sum of `e` (`pooled`). PyTorch runs this a layer at a time
//! over `[entities, hidden]` tensors and its backward writes and re-reads several more of
//! them; here an entity's vectors stay in registers and the backward recomputes them
//! (place_train.rs does the same for the place policy's one-layer host encoder). `train`,
//! forward and backward in one pass, keeps a row's vectors instead and runs each layer and
//! each weight's gradient over all of the row's entities as blocked products (blocked.rs):
//! each weight vector loaded then serves several entities (docs/benchmarks.md has the gain).
//!
//! Entities come packed: row `r`'s are `offsets[r]..offsets[r + 1]`, so a window that is
//! mostly empty costs only its filled slots. Each entity carries its weight in `pooled` and
//! whether it needs a logit at all (`scored`): a job in a row choosing a host, or a masked
//! one, only feeds the value head.
//!
//! Gradients are summed in runs of `ROWS_PER_TASK` rows, then the runs in order, whatever the
//! number of threads: the same inputs give the same bits, which a resumed run needs.

use rayon::prelude::*;

use crate::error::{SimError, SimResult};
use crate::nn::blocked::{accumulate, BLOCK};
use crate::nn::place_net::{
    avx_fma_available, axpy, check, padded, relu, transpose_padded, width_for,
};
use crate::nn::place_train::{halving_dot, pad_rows, rows_padded, unpad_rows};

/// Rows summed together before the runs are summed: fixed, so the result does not depend on
/// how rayon splits the work.
const ROWS_PER_TASK: usize = 16;
/// Entities below which a pass runs on the calling thread: a rollout step's batch, where
/// waking rayon's threads costs more than it saves.
const SEQUENTIAL_BELOW: usize = 2048;
/// The widest entity input (pick's 8 job features beside their logarithms is 16).
pub const MAX_INPUTS: usize = 64;

/// The layers' weights, padded to `width` (zeros beyond `hidden`, which add exact zeros).
/// Square matrices are kept both ways: by input for the forward pass, by output for the
/// backward.
#[derive(Debug, Clone)]
pub struct EntityLayers {
    hidden: usize,
    width: usize,
    inputs: usize,
    w1_by_input: Vec<f32>,
    b1: Vec<f32>,
    w2_by_input: Vec<f32>,
    w2_by_output: Vec<f32>,
    b2: Vec<f32>,
    ws_by_input: Vec<f32>,
    ws_by_output: Vec<f32>,
    wo: Vec<f32>,
    bo: f32,
    avx_fma: bool,
}

/// Gradients of the weights, laid out as PyTorch holds them (`[out][in]`).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityLayerGrads {
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
    pub ws: Vec<f32>,
    pub wo: Vec<f32>,
    pub bo: f32,
}

/// A batch of packed entities: their inputs (`[entities][inputs]`), each row's range
/// (`offsets`, rows + 1 of them), weights in the pooled sum and whether each is scored.
#[derive(Debug, Clone, Copy)]
pub struct Entities<'a> {
    pub x: &'a [f32],
    pub offsets: &'a [i64],
    pub weight: &'a [f32],
    pub scored: &'a [i8],
}

/// One run of rows' share of the weight gradients, padded as the weights are.
struct Sums {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    ws: Vec<f32>,
    wo: Vec<f32>,
    bo: f32,
}

impl Sums {
    fn zeros(inputs: usize, width: usize) -> Self {
        Self {
            w1: vec![0.0; inputs * width],
            b1: vec![0.0; width],
            w2: vec![0.0; width * width],
            b2: vec![0.0; width],
            ws: vec![0.0; width * width],
            wo: vec![0.0; width],
            bo: 0.0,
        }
    }

    fn add(&mut self, other: &Sums) {
        let pairs = [
            (&mut self.w1, &other.w1),
            (&mut self.b1, &other.b1),
            (&mut self.w2, &other.w2),
            (&mut self.b2, &other.b2),
            (&mut self.ws, &other.ws),
            (&mut self.wo, &other.wo),
        ];
        for (a, b) in pairs {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.bo += other.bo;
    }
}

/// A run of rows: its entities (offsets still absolute), its rows' shares, and its outputs.
struct ForwardRun<'a> {
    entities: Entities<'a>,
    share: &'a [f32],
    logits: &'a mut [f32],
    pooled: &'a mut [f32],
}

struct BackwardRun<'a> {
    entities: Entities<'a>,
    share: &'a [f32],
    g_logits: &'a [f32],
    g_pooled: &'a [f32],
    g_share: &'a mut [f32],
    sums: Sums,
}

/// A pass over one run of rows, compiled once per width and code path.
trait RunPass {
    type Out;
    fn run<const W: usize, const FMA: bool>(self, layers: &EntityLayers) -> Self::Out;
}

impl RunPass for ForwardRun<'_> {
    type Out = ();
    #[inline(always)]
    fn run<const W: usize, const FMA: bool>(self, layers: &EntityLayers) {
        layers.forward_w::<W, FMA>(self)
    }
}

impl RunPass for BackwardRun<'_> {
    type Out = Sums;
    #[inline(always)]
    fn run<const W: usize, const FMA: bool>(self, layers: &EntityLayers) -> Sums {
        layers.backward_w::<W, FMA>(self)
    }
}

impl EntityLayers {
    /// Weights as PyTorch holds them: `w1` `[hidden][inputs]`, `b1`, `w2` and `ws`
    /// `[hidden][hidden]`, `b2`, `wo` `[hidden]`; the hidden size is `b1`'s length and the
    /// input size `w1`'s length over it.
    pub fn new(
        w1: &[f32],
        b1: &[f32],
        w2: &[f32],
        b2: &[f32],
        ws: &[f32],
        wo: &[f32],
        bo: f32,
    ) -> SimResult<Self> {
        let h = b1.len();
        if h == 0 {
            return Err(SimError::InvalidConfig("hidden size must be positive".into()));
        }
        let width = width_for(h)?;
        let inputs = w1.len() / h;
        if inputs == 0 || inputs > MAX_INPUTS {
            return Err(SimError::InvalidConfig(format!(
                "entity layers read 1 to {MAX_INPUTS} inputs; w1 holds {} values for hidden size {h}",
                w1.len()
            )));
        }
        check("w1", w1, h * inputs)?;
        check("b1", b1, h)?;
        check("w2", w2, h * h)?;
        check("b2", b2, h)?;
        check("ws", ws, h * h)?;
        check("wo", wo, h)?;
        check("bo", &[bo], 1)?;
        Ok(Self {
            hidden: h,
            width,
            inputs,
            w1_by_input: transpose_padded(w1, h, inputs, inputs, width),
            b1: padded(b1, width),
            w2_by_input: transpose_padded(w2, h, h, width, width),
            w2_by_output: rows_padded(w2, h, width),
            b2: padded(b2, width),
            ws_by_input: transpose_padded(ws, h, h, width, width),
            ws_by_output: rows_padded(ws, h, width),
            wo: padded(wo, width),
            bo,
            avx_fma: avx_fma_available(),
        })
    }

    /// The hidden size the layers were built with.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The number of inputs each entity has.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The batch's row count, every buffer checked against the entities and the rows.
    fn check(&self, entities: &Entities<'_>, per_entity: &[(&str, usize)],
             per_row: &[(&str, usize)]) -> SimResult<usize> {
        let Entities { x, offsets, weight, scored } = *entities;
        if offsets.is_empty() || offsets[0] != 0 {
            return Err(SimError::InvalidConfig("offsets must start at 0".into()));
        }
        if offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err(SimError::InvalidConfig("offsets must not decrease".into()));
        }
        let n = *offsets.last().expect("not empty") as usize;
        let rows = offsets.len() - 1;
        if x.len() != n * self.inputs {
            return Err(SimError::InvalidConfig(format!(
                "x holds {} values; {n} entities of {} inputs need {}",
                x.len(),
                self.inputs,
                n * self.inputs
            )));
        }
        let entity_buffers = [("weight", weight.len()), ("scored", scored.len())];
        for &(name, len) in entity_buffers.iter().chain(per_entity) {
            if len != n {
                return Err(SimError::InvalidConfig(format!(
                    "{name} holds {len} values; the offsets say {n} entities"
                )));
            }
        }
        for &(name, len) in per_row {
            if len != rows * self.hidden {
                return Err(SimError::InvalidConfig(format!(
                    "{name} holds {len} values; {rows} rows of hidden size {} need {}",
                    self.hidden,
                    rows * self.hidden
                )));
            }
        }
        Ok(rows)
    }

    /// Each entity's logit (0 where not scored) and each row's pooled sum of embeddings,
    /// `share` (`[rows][hidden]`) being each row's part of the scorer's input.
    pub fn forward(
        &self,
        entities: Entities<'_>,
        share: &[f32],
        logits: &mut [f32],
        pooled: &mut [f32],
    ) -> SimResult<()> {
        let rows = self.check(
            &entities,
            &[("logits", logits.len())],
            &[("share", share.len()), ("pooled", pooled.len())],
        )?;
        let (h, width) = (self.hidden, self.width);
        let share = pad_rows(share, h, width);
        let mut pooled_padded = vec![0.0f32; rows * width];
        let mut logits_rest = logits;
        let tasks: Vec<ForwardRun<'_>> = row_runs(entities, self.inputs, width, &mut pooled_padded)
            .into_iter()
            .map(|run| {
                let (mine, tail) = std::mem::take(&mut logits_rest).split_at_mut(run.hi - run.lo);
                logits_rest = tail;
                ForwardRun {
                    entities: run.entities,
                    share: &share[run.first * width..run.last * width],
                    logits: mine,
                    pooled: run.out,
                }
            })
            .collect();
        self.run_all(tasks, entities.scored.len());
        unpad_rows(&pooled_padded, pooled, h, width);
        Ok(())
    }

    /// Gradients of the weights (returned) and of `share` (written into `g_share`), given
    /// those of the logits and of `pooled`. An unscored entity's logit gradient is ignored.
    pub fn backward(
        &self,
        entities: Entities<'_>,
        share: &[f32],
        g_logits: &[f32],
        g_pooled: &[f32],
        g_share: &mut [f32],
    ) -> SimResult<EntityLayerGrads> {
        let rows = self.check(
            &entities,
            &[("g_logits", g_logits.len())],
            &[("share", share.len()), ("g_pooled", g_pooled.len()), ("g_share", g_share.len())],
        )?;
        let (h, width, inputs) = (self.hidden, self.width, self.inputs);
        let share = pad_rows(share, h, width);
        let g_pooled = pad_rows(g_pooled, h, width);
        let mut g_share_padded = vec![0.0f32; rows * width];
        let tasks: Vec<BackwardRun<'_>> = row_runs(entities, inputs, width, &mut g_share_padded)
            .into_iter()
            .map(|run| BackwardRun {
                entities: run.entities,
                share: &share[run.first * width..run.last * width],
                g_logits: &g_logits[run.lo..run.hi],
                g_pooled: &g_pooled[run.first * width..run.last * width],
                g_share: run.out,
                sums: Sums::zeros(inputs, width),
            })
            .collect();
        let runs = self.run_all(tasks, entities.scored.len());
        unpad_rows(&g_share_padded, g_share, h, width);
        let mut total = Sums::zeros(inputs, width);
        for run in &runs {
            total.add(run);
        }
        Ok(self.grads_from(&total))
    }

    /// Summed gradients back in PyTorch's `[out][in]` layout, the padding dropped.
    fn grads_from(&self, total: &Sums) -> EntityLayerGrads {
        let (h, width, inputs) = (self.hidden, self.width, self.inputs);
        let unpad = |by_input: &[f32], ins: usize| -> Vec<f32> {
            (0..h)
                .flat_map(|o| (0..ins).map(move |i| by_input[i * width + o]))
                .collect()
        };
        EntityLayerGrads {
            w1: unpad(&total.w1, inputs),
            b1: total.b1[..h].to_vec(),
            w2: unpad(&total.w2, h),
            b2: total.b2[..h].to_vec(),
            ws: unpad(&total.ws, h),
            wo: total.wo[..h].to_vec(),
            bo: total.bo,
        }
    }

    /// Every run's pass, in the runs' order: on the calling thread for a small batch
    /// (`entities` below SEQUENTIAL_BELOW), across rayon's threads otherwise.
    fn run_all<P: RunPass + Send>(&self, runs: Vec<P>, entities: usize) -> Vec<P::Out>
    where
        P::Out: Send,
    {
        if entities < SEQUENTIAL_BELOW {
            runs.into_iter().map(|run| self.dispatch(run)).collect()
        } else {
            runs.into_par_iter().map(|run| self.dispatch(run)).collect()
        }
    }

    fn dispatch<P: RunPass>(&self, pass: P) -> P::Out {
        #[cfg(target_arch = "x86_64")]
        if self.avx_fma {
            // Safety: the CPU was checked for AVX and FMA when the layers were built.
            return unsafe { self.dispatch_avx_fma(pass) };
        }
        self.dispatch_at::<P, false>(pass)
    }

    /// The same code compiled for 8-wide vectors and fused multiply-adds, chosen at run time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx,fma")]
    unsafe fn dispatch_avx_fma<P: RunPass>(&self, pass: P) -> P::Out {
        self.dispatch_at::<P, true>(pass)
    }

    #[inline(always)]
    fn dispatch_at<P: RunPass, const FMA: bool>(&self, pass: P) -> P::Out {
        match self.width {
            8 => pass.run::<8, FMA>(self),
            16 => pass.run::<16, FMA>(self),
            32 => pass.run::<32, FMA>(self),
            64 => pass.run::<64, FMA>(self),
            _ => pass.run::<128, FMA>(self),
        }
    }

    /// An entity's hidden vectors: `a = relu(W1 x + b1)` and `e = relu(W2 a + b2)`.
    #[inline(always)]
    fn encode<const W: usize, const FMA: bool>(&self, x: &[f32]) -> ([f32; W], [f32; W]) {
        let mut a: [f32; W] = self.b1.as_slice().try_into().expect("padded to the width");
        let w1 = self.w1_by_input.as_chunks::<W>().0;
        for (xi, row) in x.iter().zip(w1) {
            axpy::<W, FMA>(&mut a, *xi, row);
        }
        relu(&mut a);
        let mut e = sparse_matvec::<W, FMA>(&a, &nonzero(&a), self.w2_by_input.as_chunks::<W>().0);
        for (v, b) in e.iter_mut().zip(&self.b2) {
            *v += b;
        }
        relu(&mut e);
        (a, e)
    }

    /// The scorer's hidden vector `z = relu(Ws e + share)`.
    #[inline(always)]
    fn score<const W: usize, const FMA: bool>(&self, e: &[f32; W], e_nonzero: &Nonzero<W>,
                                              share: &[f32; W]) -> [f32; W] {
        let mut z = sparse_matvec::<W, FMA>(e, e_nonzero, self.ws_by_input.as_chunks::<W>().0);
        for k in 0..W {
            z[k] += share[k];
        }
        relu(&mut z);
        z
    }

    // The entity index addresses the packed inputs, weights, flags and outputs at once.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn forward_w<const W: usize, const FMA: bool>(&self, run: ForwardRun<'_>) {
        let ForwardRun { entities, share, logits, pooled } = run;
        let wo: [f32; W] = self.wo.as_slice().try_into().expect("padded to the width");
        let base = entities.offsets[0] as usize;
        let shares = share.as_chunks::<W>().0;
        let pooled = pooled.as_chunks_mut::<W>().0;
        for (r, (share, pooled)) in shares.iter().zip(pooled).enumerate() {
            let lo = entities.offsets[r] as usize - base;
            let hi = entities.offsets[r + 1] as usize - base;
            let mut sum = [0.0f32; W];
            for i in lo..hi {
                let (_, e) = self.encode::<W, FMA>(&entities.x[i * self.inputs..(i + 1) * self.inputs]);
                axpy::<W, FMA>(&mut sum, entities.weight[i], &e);
                logits[i] = if entities.scored[i] != 0 {
                    halving_dot(&self.score::<W, FMA>(&e, &nonzero(&e), share), &wo) + self.bo
                } else {
                    0.0
                };
            }
            *pooled = sum;
        }
    }

    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn backward_w<const W: usize, const FMA: bool>(&self, run: BackwardRun<'_>) -> Sums {
        let BackwardRun { entities, share, g_logits, g_pooled, g_share, mut sums } = run;
        let wo: [f32; W] = self.wo.as_slice().try_into().expect("padded to the width");
        let base = entities.offsets[0] as usize;
        let rows = share.as_chunks::<W>().0.iter().zip(g_pooled.as_chunks::<W>().0);
        let g_shares = g_share.as_chunks_mut::<W>().0;
        for (r, ((share, g_pool), g_share)) in rows.zip(g_shares).enumerate() {
            let lo = entities.offsets[r] as usize - base;
            let hi = entities.offsets[r + 1] as usize - base;
            let mut g_share_sum = [0.0f32; W];
            for i in lo..hi {
                let scored = entities.scored[i] != 0 && g_logits[i] != 0.0;
                let weight = entities.weight[i];
                if !scored && weight == 0.0 {
                    continue; // no gradient reaches this entity
                }
                // The forward's vectors again, recomputed: the forward was another call
                // (`train` keeps them instead).
                let x = &entities.x[i * self.inputs..(i + 1) * self.inputs];
                let (a, e) = self.encode::<W, FMA>(x);
                let z = scored.then(|| self.score::<W, FMA>(&e, &nonzero(&e), share));
                let hidden = Hidden { x, a: &a, e: &e, z: z.as_ref().map(|z| (g_logits[i], z)) };
                self.backward_entity::<W, FMA>(hidden, weight, g_pool, &wo, &mut sums, &mut g_share_sum);
            }
            *g_share = g_share_sum;
        }
        sums
    }

    /// One entity's share of the backward pass, from its inputs and hidden vectors, its
    /// weight in the pooled sum and the pooled sum's gradient: adds to the weights' sums and
    /// to its row's `share` gradient.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn backward_entity<const W: usize, const FMA: bool>(&self, hidden: Hidden<'_, W>, weight: f32,
                                                        g_pool: &[f32; W], wo: &[f32; W],
                                                        sums: &mut Sums,
                                                        g_share_sum: &mut [f32; W]) {
        let Hidden { x, a, e, z } = hidden;
        // No gradient for the inputs themselves: they are observations.
        let (w2_by_output, ws_by_output) = (
            self.w2_by_output.as_chunks::<W>().0,
            self.ws_by_output.as_chunks::<W>().0,
        );
        let (a_nonzero, e_nonzero) = (nonzero(a), nonzero(e));
        let mut g_e = [0.0f32; W];
        for k in 0..W {
            g_e[k] = weight * g_pool[k];
        }
        if let Some((g_logit, z)) = z {
            sums.bo += g_logit;
            let wo_sums: &mut [f32; W] = sums.wo.as_mut_slice().try_into().expect("padded");
            axpy::<W, FMA>(wo_sums, g_logit, z);
            let mut g_z = [0.0f32; W];
            for k in 0..W {
                g_z[k] = if z[k] > 0.0 { g_logit * wo[k] } else { 0.0 };
                g_share_sum[k] += g_z[k];
            }
            let ws_sums = sums.ws.as_chunks_mut::<W>().0;
            for &j in e_nonzero.indices() {
                axpy::<W, FMA>(&mut ws_sums[j as usize], e[j as usize], &g_z);
            }
            let back = sparse_matvec::<W, FMA>(&g_z, &nonzero(&g_z), ws_by_output);
            for k in 0..W {
                g_e[k] += back[k];
            }
        }
        for k in 0..W {
            g_e[k] = if e[k] > 0.0 { g_e[k] } else { 0.0 };
            sums.b2[k] += g_e[k];
        }
        let w2_sums = sums.w2.as_chunks_mut::<W>().0;
        for &j in a_nonzero.indices() {
            axpy::<W, FMA>(&mut w2_sums[j as usize], a[j as usize], &g_e);
        }
        // g_e is zero wherever e is: the same indices.
        let mut g_a = sparse_matvec::<W, FMA>(&g_e, &e_nonzero, w2_by_output);
        for k in 0..W {
            g_a[k] = if a[k] > 0.0 { g_a[k] } else { 0.0 };
            sums.b1[k] += g_a[k];
        }
        for (xi, sum) in x.iter().zip(sums.w1.as_chunks_mut::<W>().0) {
            axpy::<W, FMA>(sum, *xi, &g_a);
        }
    }

    /// Forward and backward together, a row at a time: `head` turns each row's logits and
    /// pooled vector into their gradients (its loss), and the row's entities go back
    /// through the layers from the vectors kept since its forward, not recomputed. The
    /// weights' gradients are those `forward`, the head and `backward` give in turn, to
    /// float rounding (the products sum in another order), and the same bits on any pool.
    pub fn train<H: RowHead>(&self, entities: Entities<'_>, share: &[f32], head: &H)
                             -> SimResult<(EntityLayerGrads, Vec<f32>, H::Acc)> {
        let rows = self.check(&entities, &[], &[("share", share.len())])?;
        let (h, width, inputs) = (self.hidden, self.width, self.inputs);
        let share = pad_rows(share, h, width);
        let mut g_share_padded = vec![0.0f32; rows * width];
        let tasks: Vec<TrainRun<'_, H>> = row_runs(entities, inputs, width, &mut g_share_padded)
            .into_iter()
            .map(|run| TrainRun {
                entities: run.entities,
                first_row: run.first,
                share: &share[run.first * width..run.last * width],
                g_share: run.out,
                head,
            })
            .collect();
        let runs = self.run_all(tasks, entities.scored.len());
        let mut g_share = vec![0.0f32; rows * h];
        unpad_rows(&g_share_padded, &mut g_share, h, width);
        let mut total = Sums::zeros(inputs, width);
        let mut acc = head.start();
        for (sums, part) in runs {
            total.add(&sums);
            head.merge(&mut acc, part);
        }
        Ok((self.grads_from(&total), g_share, acc))
    }

    /// A run of rows, each as small dense products over its entities (blocked.rs): the
    /// layers over all of a row's entities at once, the head, then the gradients back
    /// through the layers from the vectors kept, each weight's gradient summed over the
    /// row's entities in one product. Rows are padded to whole blocks with entities whose
    /// gradients are exactly zero, so the padding adds nothing.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn train_w<const W: usize, const FMA: bool, H: RowHead>(&self, run: TrainRun<'_, H>)
                                                           -> (Sums, H::Acc) {
        let TrainRun { entities, first_row, share, g_share, head } = run;
        let mut sums = Sums::zeros(self.inputs, self.width);
        let mut acc = head.start();
        let inputs = self.inputs;
        let wo: [f32; W] = self.wo.as_slice().try_into().expect("padded to the width");
        let b1: [f32; W] = self.b1.as_slice().try_into().expect("padded to the width");
        let b2: [f32; W] = self.b2.as_slice().try_into().expect("padded to the width");
        let w1 = &self.w1_by_input.as_chunks::<W>().0[..inputs];
        let (w2, ws) = (self.w2_by_input.as_chunks::<W>().0, self.ws_by_input.as_chunks::<W>().0);
        let (w2_back, ws_back) = (self.w2_by_output.as_chunks::<W>().0, self.ws_by_output.as_chunks::<W>().0);
        let base = entities.offsets[0] as usize;
        let h = self.hidden;
        let mut x = Vec::new();
        let (mut a, mut e, mut z) = (Vec::<[f32; W]>::new(), Vec::new(), Vec::new());
        let (mut g_z, mut g_e, mut g_a) = (Vec::<[f32; W]>::new(), Vec::new(), Vec::new());
        let (mut logits, mut g_logits) = (Vec::new(), Vec::new());
        let g_shares = g_share.as_chunks_mut::<W>().0;
        for (r, (share, g_share)) in share.as_chunks::<W>().0.iter().zip(g_shares).enumerate() {
            let lo = entities.offsets[r] as usize - base;
            let hi = entities.offsets[r + 1] as usize - base;
            let (n, padded) = (hi - lo, (hi - lo).next_multiple_of(BLOCK));
            let scored = &entities.scored[lo..hi];
            let weight = &entities.weight[lo..hi];
            x.clear();
            x.extend_from_slice(&entities.x[lo * inputs..hi * inputs]);
            x.resize(padded * inputs, 0.0);
            // Forward: a = relu(W1 x + b1), e = relu(W2 a + b2), z = relu(Ws e + share).
            reset(&mut a, padded, b1);
            accumulate::<W, FMA>(&x, (inputs, 1), w1, &mut a);
            relu_all(&mut a);
            reset(&mut e, padded, b2);
            accumulate::<W, FMA>(a.as_flattened(), (W, 1), w2, &mut e);
            relu_all(&mut e);
            reset(&mut z, padded, *share);
            accumulate::<W, FMA>(e.as_flattened(), (W, 1), ws, &mut z);
            relu_all(&mut z);
            logits.clear();
            let mut pooled = [0.0f32; W];
            for i in 0..n {
                axpy::<W, FMA>(&mut pooled, weight[i], &e[i]);
                logits.push(if scored[i] != 0 { halving_dot(&z[i], &wo) + self.bo } else { 0.0 });
            }
            g_logits.clear();
            g_logits.resize(n, 0.0f32);
            let mut g_pool = [0.0f32; W];
            head.row(first_row + r, &logits, &pooled[..h], &mut g_logits, &mut g_pool[..h], &mut acc);
            // Backward. An unscored entity's logit is no output: whatever the head wrote
            // there, no gradient flows from it.
            let mut g_share_sum = [0.0f32; W];
            reset(&mut g_z, padded, [0.0; W]);
            for i in 0..n {
                let g_logit = if scored[i] != 0 { g_logits[i] } else { 0.0 };
                if g_logit == 0.0 {
                    continue;
                }
                sums.bo += g_logit;
                let wo_sums: &mut [f32; W] = sums.wo.as_mut_slice().try_into().expect("padded");
                axpy::<W, FMA>(wo_sums, g_logit, &z[i]);
                for k in 0..W {
                    g_z[i][k] = if z[i][k] > 0.0 { g_logit * wo[k] } else { 0.0 };
                    g_share_sum[k] += g_z[i][k];
                }
            }
            accumulate::<W, FMA>(e.as_flattened(), (1, W), &g_z, sums.ws.as_chunks_mut::<W>().0);
            reset(&mut g_e, padded, [0.0; W]);
            for i in 0..n {
                for k in 0..W {
                    g_e[i][k] = weight[i] * g_pool[k];
                }
            }
            accumulate::<W, FMA>(g_z.as_flattened(), (W, 1), ws_back, &mut g_e);
            relu_gradient(&mut g_e, &e, &mut sums.b2);
            accumulate::<W, FMA>(a.as_flattened(), (1, W), &g_e, sums.w2.as_chunks_mut::<W>().0);
            reset(&mut g_a, padded, [0.0; W]);
            accumulate::<W, FMA>(g_e.as_flattened(), (W, 1), w2_back, &mut g_a);
            relu_gradient(&mut g_a, &a, &mut sums.b1);
            accumulate::<W, FMA>(&x, (1, inputs), &g_a, &mut sums.w1.as_chunks_mut::<W>().0[..inputs]);
            *g_share = g_share_sum;
        }
        (sums, acc)
    }
}

/// `v` as `len` copies of `fill`, its allocation kept.
#[inline(always)]
fn reset<const W: usize>(v: &mut Vec<[f32; W]>, len: usize, fill: [f32; W]) {
    v.clear();
    v.resize(len, fill);
}

// Both loops below are spelled out over a local vector. `iter_mut().for_each` was left a
// call outside the AVX code; and written straight into the slices, the gradient and the
// bias sums might overlap as far as the compiler could tell, so it ran its scalar loop (the
// profile's hottest loop in the pass).

#[inline(always)]
fn relu_all<const W: usize>(vs: &mut [[f32; W]]) {
    for v in vs {
        let mut r = *v;
        relu(&mut r);
        *v = r;
    }
}

/// Each gradient zeroed where its layer's output is (ReLU's gradient), and their sum (the
/// bias's gradient) added to `bias_sums`.
#[inline(always)]
fn relu_gradient<const W: usize>(grads: &mut [[f32; W]], outputs: &[[f32; W]], bias_sums: &mut [f32]) {
    let mut sum = [0.0f32; W];
    for (g, out) in grads.iter_mut().zip(outputs) {
        let mut v = [0.0f32; W];
        for k in 0..W {
            v[k] = if out[k] > 0.0 { g[k] } else { 0.0 };
            sum[k] += v[k];
        }
        *g = v;
    }
    for (b, s) in bias_sums.iter_mut().zip(sum) {
        *b += s;
    }
}

/// An entity's inputs and hidden vectors for its backward pass; `z` (with its logit's
/// gradient) only when that gradient reaches it.
struct Hidden<'a, const W: usize> {
    x: &'a [f32],
    a: &'a [f32; W],
    e: &'a [f32; W],
    z: Option<(f32, &'a [f32; W])>,
}

/// A row's loss in a training pass (`EntityLayers::train`): from a row's logits (0 where an
/// entity is not scored) and pooled vector, the gradients of both; anything else the loss
/// sums (its own weights' gradients, loss totals) goes into an accumulator, one per run of
/// rows, merged in the rows' order.
pub trait RowHead: Sync {
    type Acc: Send;
    fn start(&self) -> Self::Acc;
    fn row(&self, row: usize, logits: &[f32], pooled: &[f32], g_logits: &mut [f32],
           g_pooled: &mut [f32], acc: &mut Self::Acc);
    fn merge(&self, total: &mut Self::Acc, part: Self::Acc);
}

/// A run of rows for `train`: its entities, its rows' shares and their gradients' place.
struct TrainRun<'a, H: RowHead> {
    entities: Entities<'a>,
    first_row: usize,
    share: &'a [f32],
    g_share: &'a mut [f32],
    head: &'a H,
}

impl<H: RowHead> RunPass for TrainRun<'_, H> {
    type Out = (Sums, H::Acc);
    #[inline(always)]
    fn run<const W: usize, const FMA: bool>(self, layers: &EntityLayers) -> Self::Out {
        layers.train_w::<W, FMA, H>(self)
    }
}

/// Where a vector is nonzero, listed without branches: after a ReLU about half of a hidden
/// vector is zero, and a product over only its nonzero entries does half the multiply-adds
/// (testing each entry instead mispredicts about half the time).
pub(crate) struct Nonzero<const W: usize> {
    at: [u8; W],
    count: usize,
}

impl<const W: usize> Nonzero<W> {
    #[inline(always)]
    fn indices(&self) -> &[u8] {
        &self.at[..self.count]
    }
}

/// For each byte of flags, the positions of its set bits, packed from the low byte up.
const SET_BITS: [u64; 256] = set_bits();

const fn set_bits() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut flags = 0;
    while flags < 256 {
        let (mut bit, mut count, mut packed) = (0, 0, 0u64);
        while bit < 8 {
            if flags & (1 << bit) != 0 {
                packed |= (bit as u64) << (8 * count);
                count += 1;
            }
            bit += 1;
        }
        table[flags] = packed;
        flags += 1;
    }
    table
}

/// Eight entries at a time: their nonzero flags as a byte (a vector compare), whose set
/// bits' positions a table lists. Eight bytes are written whatever the count; the next
/// group overwrites those past it. The widths are multiples of eight.
#[inline(always)]
pub(crate) fn nonzero<const W: usize>(v: &[f32; W]) -> Nonzero<W> {
    let mut at = [0u8; W];
    let mut count = 0;
    for (group, chunk) in v.as_chunks::<8>().0.iter().enumerate() {
        let mut flags = 0usize;
        for (k, x) in chunk.iter().enumerate() {
            flags |= usize::from(*x != 0.0) << k;
        }
        // The group's first index added to each byte (no byte overflows: W <= 128).
        let positions = SET_BITS[flags] + (8 * group as u64) * 0x0101_0101_0101_0101;
        at[count..count + 8].copy_from_slice(&positions.to_le_bytes());
        count += flags.count_ones() as usize;
    }
    Nonzero { at, count }
}

/// `sum_j x[j] * rows[j]` over the nonzero `x[j]` only, in two interleaved partial sums (as
/// place_train's `matvec`, which explains why two).
#[inline(always)]
pub(crate) fn sparse_matvec<const W: usize, const FMA: bool>(
    x: &[f32; W],
    nonzero: &Nonzero<W>,
    rows: &[[f32; W]],
) -> [f32; W] {
    let (mut even, mut odd) = ([0.0f32; W], [0.0f32; W]);
    let indices = nonzero.indices();
    let pairs = indices.as_chunks::<2>();
    for pair in pairs.0 {
        let (i, j) = (pair[0] as usize, pair[1] as usize);
        axpy::<W, FMA>(&mut even, x[i], &rows[i]);
        axpy::<W, FMA>(&mut odd, x[j], &rows[j]);
    }
    for &i in pairs.1 {
        axpy::<W, FMA>(&mut even, x[i as usize], &rows[i as usize]);
    }
    for k in 0..W {
        even[k] += odd[k];
    }
    even
}

/// A run of `ROWS_PER_TASK` rows (`first..last`, entities `lo..hi`): its entities, offsets
/// still absolute, and its rows' part of a padded per-row output.
struct RowRun<'a> {
    first: usize,
    last: usize,
    lo: usize,
    hi: usize,
    entities: Entities<'a>,
    out: &'a mut [f32],
}

/// The batch's rows cut into runs, `out` (`[rows][width]`) cut with them.
fn row_runs<'a>(entities: Entities<'a>, inputs: usize, width: usize,
                out: &'a mut [f32]) -> Vec<RowRun<'a>> {
    let rows = entities.offsets.len() - 1;
    let mut runs = Vec::with_capacity(rows.div_ceil(ROWS_PER_TASK));
    let mut rest = out;
    for first in (0..rows).step_by(ROWS_PER_TASK) {
        let last = (first + ROWS_PER_TASK).min(rows);
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut((last - first) * width);
        rest = tail;
        let (lo, hi) = (entities.offsets[first] as usize, entities.offsets[last] as usize);
        runs.push(RowRun {
            first,
            last,
            lo,
            hi,
            entities: Entities {
                x: &entities.x[lo * inputs..hi * inputs],
                offsets: &entities.offsets[first..=last],
                weight: &entities.weight[lo..hi],
                scored: &entities.scored[lo..hi],
            },
            out: mine,
        });
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::place_net::tests::random;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    struct Case {
        w: [Vec<f32>; 6],
        bo: f32,
        x: Vec<f32>,
        offsets: Vec<i64>,
        weight: Vec<f32>,
        scored: Vec<i8>,
        share: Vec<f32>,
    }

    fn case(hidden: usize, inputs: usize, rows: usize, seed: u64) -> Case {
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        let h = hidden;
        let w = [
            random(rng, h * inputs),
            random(rng, h),
            random(rng, h * h),
            random(rng, h),
            random(rng, h * h),
            random(rng, h),
        ];
        let mut offsets = vec![0i64];
        for _ in 0..rows {
            let n = rng.gen_range(0..7);
            offsets.push(offsets.last().unwrap() + n);
        }
        let n = *offsets.last().unwrap() as usize;
        Case {
            bo: rng.gen_range(-1.0..1.0),
            x: random(rng, n * inputs),
            weight: (0..n).map(|_| rng.gen_range(0.0..1.0)).collect(),
            scored: (0..n).map(|_| rng.gen_range(0..2)).collect(),
            share: random(rng, rows * h),
            offsets,
            w,
        }
    }

    fn layers(w: &[Vec<f32>; 6], bo: f32) -> EntityLayers {
        EntityLayers::new(&w[0], &w[1], &w[2], &w[3], &w[4], &w[5], bo).unwrap()
    }

    fn entities(c: &Case) -> Entities<'_> {
        Entities { x: &c.x, offsets: &c.offsets, weight: &c.weight, scored: &c.scored }
    }

    /// `sum(c_l * logit over scored entities) + sum(c_p * pooled)` in f64, straight from
    /// the definition: the reference for finite differences small enough to cross no ReLU.
    #[allow(clippy::needless_range_loop)]
    fn loss(c: &Case, w: &[Vec<f64>; 6], bo: f64, c_l: &[f32], c_p: &[f32]) -> f64 {
        let h = w[1].len();
        let inputs = w[0].len() / h;
        let layer = |m: &[f64], b: &[f64], v: &[f64]| -> Vec<f64> {
            (0..h).map(|o| b[o] + (0..v.len()).map(|i| m[o * v.len() + i] * v[i]).sum::<f64>())
                .collect()
        };
        let relu = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|x| x.max(0.0)).collect() };
        let mut total = 0.0;
        for r in 0..c.offsets.len() - 1 {
            let share: Vec<f64> = c.share[r * h..(r + 1) * h].iter().map(|&v| v as f64).collect();
            let mut pooled = vec![0.0; h];
            for i in c.offsets[r] as usize..c.offsets[r + 1] as usize {
                let x: Vec<f64> = c.x[i * inputs..(i + 1) * inputs].iter().map(|&v| v as f64)
                    .collect();
                let a = relu(layer(&w[0], &w[1], &x));
                let e = relu(layer(&w[2], &w[3], &a));
                for k in 0..h {
                    pooled[k] += c.weight[i] as f64 * e[k];
                }
                if c.scored[i] != 0 {
                    let z = relu(layer(&w[4], &share, &e));
                    let logit = bo + (0..h).map(|k| w[5][k] * z[k]).sum::<f64>();
                    total += c_l[i] as f64 * logit;
                }
            }
            total += (0..h).map(|k| c_p[r * h + k] as f64 * pooled[k]).sum::<f64>();
        }
        total
    }

    /// The fused forward pass against the f64 definition.
    #[test]
    fn forward_matches_the_definition() {
        let c = case(24, 16, 50, 11);
        let rows = c.offsets.len() - 1;
        let mut logits = vec![0.0; c.scored.len()];
        let mut pooled = vec![0.0; rows * 24];
        layers(&c.w, c.bo).forward(entities(&c), &c.share, &mut logits, &mut pooled).unwrap();
        let w64 = c.w.clone().map(|v| v.iter().map(|&x| x as f64).collect::<Vec<f64>>());
        let rng = &mut ChaCha8Rng::seed_from_u64(5);
        let (c_l, c_p) = (random(rng, logits.len()), random(rng, pooled.len()));
        let fused: f64 = logits.iter().zip(&c_l).zip(&c.scored)
            .map(|((l, k), &s)| if s != 0 { (*l as f64) * (*k as f64) } else { 0.0 }).sum::<f64>()
            + pooled.iter().zip(&c_p).map(|(p, k)| (*p as f64) * (*k as f64)).sum::<f64>();
        let reference = loss(&c, &w64, c.bo as f64, &c_l, &c_p);
        assert!((fused - reference).abs() < 1e-3 * (1.0 + reference.abs()),
                "{fused} against {reference}");
        for (l, &s) in logits.iter().zip(&c.scored) {
            if s == 0 {
                assert_eq!(*l, 0.0, "an unscored entity's logit is 0");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_at_every_width() {
        for (hidden, seed) in [(5, 1), (16, 2), (24, 3), (40, 4)] {
            let inputs = 16;
            let c = case(hidden, inputs, 37, seed);
            let rows = c.offsets.len() - 1;
            let rng = &mut ChaCha8Rng::seed_from_u64(seed + 100);
            let c_l = random(rng, c.scored.len());
            let c_p = random(rng, rows * hidden);
            let g_logits: Vec<f32> = c_l.iter().zip(&c.scored)
                .map(|(k, &s)| if s != 0 { *k } else { 0.0 }).collect();
            let mut g_share = vec![0.0; rows * hidden];
            let g = layers(&c.w, c.bo)
                .backward(entities(&c), &c.share, &g_logits, &c_p, &mut g_share)
                .unwrap();
            let analytic = [&g.w1, &g.b1, &g.w2, &g.b2, &g.ws, &g.wo];
            let w64 = c.w.clone().map(|v| v.iter().map(|&x| x as f64).collect::<Vec<f64>>());
            let bo = c.bo as f64;
            let eps = 1e-6;
            for (m, grads) in analytic.iter().enumerate() {
                for probe in [0, grads.len() / 2, grads.len() - 1] {
                    let (mut up, mut down) = (w64.clone(), w64.clone());
                    up[m][probe] += eps;
                    down[m][probe] -= eps;
                    let numeric = (loss(&c, &up, bo, &c_l, &c_p)
                        - loss(&c, &down, bo, &c_l, &c_p)) / (2.0 * eps);
                    let got = grads[probe] as f64;
                    assert!((numeric - got).abs() <= 1e-3 * (1.0 + numeric.abs()),
                            "hidden {hidden} weight {m}[{probe}]: {got} against {numeric}");
                }
            }
            let numeric_bo = (loss(&c, &w64, bo + eps, &c_l, &c_p)
                - loss(&c, &w64, bo - eps, &c_l, &c_p)) / (2.0 * eps);
            assert!((numeric_bo - g.bo as f64).abs() <= 1e-3 * (1.0 + numeric_bo.abs()));
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_bits_on_any_pool() {
        let c = case(32, 8, 300, 7);
        let rows = c.offsets.len() - 1;
        let g_logits = vec![0.5; c.scored.len()];
        let g_pooled = vec![0.25; rows * 32];
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut g_share = vec![0.0; rows * 32];
                let g = layers(&c.w, c.bo)
                    .backward(entities(&c), &c.share, &g_logits, &g_pooled, &mut g_share)
                    .unwrap();
                (g, g_share)
            })
        };
        assert_eq!(run(1), run(3));
    }

    /// A loss whose gradients read the forward's outputs: g = 0.3 logit - 0.1 and
    /// 0.2 pooled; it also counts its rows and sums their logits.
    struct Quadratic;

    impl RowHead for Quadratic {
        type Acc = (usize, f64);
        fn start(&self) -> Self::Acc {
            (0, 0.0)
        }
        fn row(&self, _row: usize, logits: &[f32], pooled: &[f32], g_logits: &mut [f32],
               g_pooled: &mut [f32], acc: &mut Self::Acc) {
            for (g, l) in g_logits.iter_mut().zip(logits) {
                *g = 0.3 * l - 0.1;
            }
            for (g, p) in g_pooled.iter_mut().zip(pooled) {
                *g = 0.2 * p;
            }
            acc.0 += 1;
            acc.1 += logits.iter().map(|&l| f64::from(l)).sum::<f64>();
        }
        fn merge(&self, total: &mut Self::Acc, part: Self::Acc) {
            total.0 += part.0;
            total.1 += part.1;
        }
    }

    /// Equal to float rounding: `train` sums in another order (blocked products) than the
    /// vector-at-a-time passes.
    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(1.0f32, |m, w| m.max(w.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * scale, "{what}[{i}]: {g} against {w}");
        }
    }

    #[test]
    fn train_gives_what_forward_then_backward_give() {
        for (hidden, threads) in [(8, 1), (32, 2), (40, 3)] {
            let c = case(hidden, 16, 400, 11);
            let rows = c.offsets.len() - 1;
            let l = layers(&c.w, c.bo);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (trained, reference) = pool.install(|| {
                let trained = l.train(entities(&c), &c.share, &Quadratic).unwrap();
                let mut logits = vec![0.0; c.scored.len()];
                let mut pooled = vec![0.0; rows * hidden];
                l.forward(entities(&c), &c.share, &mut logits, &mut pooled).unwrap();
                let g_logits: Vec<f32> = logits.iter().zip(&c.scored)
                    .map(|(l, &s)| if s != 0 { 0.3 * l - 0.1 } else { 0.0 })
                    .collect();
                let g_pooled: Vec<f32> = pooled.iter().map(|p| 0.2 * p).collect();
                let mut g_share = vec![0.0; rows * hidden];
                let grads = l.backward(entities(&c), &c.share, &g_logits, &g_pooled, &mut g_share)
                    .unwrap();
                (trained, (grads, g_share, logits))
            });
            // The same bits on any pool, as `backward` gives.
            let alone = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap()
                .install(|| l.train(entities(&c), &c.share, &Quadratic).unwrap());
            assert_eq!((&alone.0, &alone.1), (&trained.0, &trained.1), "hidden {hidden}");
            let (grads, g_share, (count, logit_sum)) = trained;
            let r = &reference.0;
            let pairs = [
                ("w1", &grads.w1, &r.w1), ("b1", &grads.b1, &r.b1), ("w2", &grads.w2, &r.w2),
                ("b2", &grads.b2, &r.b2), ("ws", &grads.ws, &r.ws), ("wo", &grads.wo, &r.wo),
                ("g_share", &g_share, &reference.1),
            ];
            for (name, got, want) in pairs {
                assert_close(got, want, &format!("{name}, hidden {hidden}"));
            }
            assert_close(&[grads.bo], &[r.bo], "bo");
            assert_eq!(count, rows);
            let expected: f64 = reference.2.iter().map(|&l| f64::from(l)).sum();
            assert!((logit_sum - expected).abs() < 1e-6 * expected.abs().max(1.0));
        }
    }

    #[test]
    fn rejects_offsets_and_buffers_that_disagree() {
        let c = case(8, 4, 5, 9);
        let l = layers(&c.w, c.bo);
        let n = c.scored.len();
        let mut logits = vec![0.0; n];
        let mut pooled = vec![0.0; 5 * 8];
        let mut bad = c.offsets.clone();
        bad[1] = bad[2] + 1;
        let e = Entities { offsets: &bad, ..entities(&c) };
        assert!(l.forward(e, &c.share, &mut logits, &mut pooled).is_err());
        let mut short = vec![0.0; n + 1];
        assert!(l.forward(entities(&c), &c.share, &mut short, &mut pooled).is_err());
        assert!(EntityLayers::new(&c.w[0], &c.w[1], &c.w[2], &c.w[3], &c.w[4], &c.w[5], f32::NAN)
            .is_err());
    }
}
