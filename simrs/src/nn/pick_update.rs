//! The `pick` policy's training step in Rust: one PPO minibatch, its loss and every
//! gradient, in one call (`minibatch`), and one rollout step's decisions in another
//! (`sample`).
//!
//! With the per-slot layers fused (entity_train.rs), about half of a `pick` update in
//! PyTorch was what surrounds them: gathering and packing each minibatch's slots, the masked
//! softmax over each window, the clipped loss, the value head, and autograd's bookkeeping
//! for each of those small operations. Here the update's batch is packed once
//! (`PickBatch`), and a minibatch is one call: gather its rows' slots, run the layers
//! forward, each row's loss and the gradient of its logits and value, then the layers
//! backward.
//!
//! The loss is `Trainer._update`'s (app/training/ppo.py), term by term, for the
//! `PickPolicy` without window context: the clipped policy loss, minus `ent_coef` times the
//! entropy, plus `vf_coef` times half the squared value error, summed over the rows and
//! divided by the whole minibatch's size (`size`, which exceeds the rows when data-parallel
//! workers each hold a share). Where PyTorch's `maximum` ties (the ratio inside the clip
//! range), each side gets half the gradient, as PyTorch's derivative does.

use crate::error::{SimError, SimResult};
use crate::job_features::JOB_FEATURES;
use crate::nn::entity_train::{Entities, EntityLayerGrads, EntityLayers, RowHead};
use crate::nn::place_net::check;

/// The observation's smallest value and the scale of its logarithm: `PickPolicy` reads each
/// job feature beside `ln(max(f, LOG_FLOOR)) / LOG_SCALE` (`with_logs`, app/training/policy.py).
pub const LOG_FLOOR: f32 = 1e-5;
pub const LOG_SCALE: f32 = 11.6;
/// A slot's inputs: its features and their logarithms.
pub const PICK_INPUTS: usize = 2 * JOB_FEATURES;

/// A window's slots as `PickPolicy` packs them: the filled ones (feature 7, "can start", above
/// 0) and the allowed ones, row by row in window order.
#[derive(Debug, Clone, Default)]
struct Slots {
    x: Vec<f32>,
    offsets: Vec<i64>,
    filled: Vec<i8>,
    allowed: Vec<i8>,
    /// Each packed slot's place in its window.
    slot: Vec<u32>,
}

impl Slots {
    /// Packs `mask.len() / window` windows of `window` slots each (`obs`: 8 features a slot).
    fn pack_rows(obs: &[f32], mask: &[i8], window: usize) -> SimResult<Self> {
        if window == 0 || !mask.len().is_multiple_of(window) || obs.len() != mask.len() * JOB_FEATURES {
            return Err(invalid(format!(
                "observations of {} values and masks of {} do not make rows of a {window}-slot window",
                obs.len(),
                mask.len()
            )));
        }
        all_finite("obs", obs)?;
        let mut s = Slots { offsets: vec![0], ..Slots::default() };
        for (o, m) in obs.chunks_exact(window * JOB_FEATURES).zip(mask.chunks_exact(window)) {
            for (slot, (job, &allowed)) in o.chunks_exact(JOB_FEATURES).zip(m).enumerate() {
                let filled = job[JOB_FEATURES - 1] > 0.0;
                if filled || allowed != 0 {
                    s.x.extend_from_slice(job);
                    s.x.extend(job.iter().map(|f| f.max(LOG_FLOOR).ln() / LOG_SCALE));
                    s.filled.push(i8::from(filled));
                    s.allowed.push(i8::from(allowed != 0));
                    s.slot.push(slot as u32);
                }
            }
            s.offsets.push(s.filled.len() as i64);
        }
        Ok(s)
    }

    /// Each slot's weight in its row's pooled embedding: the mean over the filled slots.
    fn weights(&self) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.filled.len());
        for pair in self.offsets.windows(2) {
            let filled = &self.filled[pair[0] as usize..pair[1] as usize];
            push_mean_weights(&mut w, filled);
        }
        w
    }
}

/// `PickPolicy`'s pooled weights of one row's slots: `filled / max(filled count, 1)`.
fn push_mean_weights(w: &mut Vec<f32>, filled: &[i8]) {
    let count = filled.iter().filter(|&&f| f != 0).count().max(1) as f32;
    w.extend(filled.iter().map(|&f| if f != 0 { 1.0 / count } else { 0.0 }));
}

/// An update's whole batch, packed once: row `r`'s slots (the filled ones and the allowed
/// ones) are `offsets[r]..offsets[r + 1]` of `x`.
#[derive(Debug, Clone)]
pub struct PickBatch {
    x: Vec<f32>,
    offsets: Vec<i64>,
    filled: Vec<i8>,
    allowed: Vec<i8>,
    /// The taken action's place among its row's packed slots; -1 where the row allowed none.
    action_at: Vec<i64>,
    old_logprob: Vec<f32>,
    targets: Vec<f32>,
}

/// The value head `v = w2 . relu(w1 pooled + b1) + b2`, weights as PyTorch holds them.
#[derive(Debug, Clone, Copy)]
pub struct ValueHead<'a> {
    pub w1: &'a [f32],
    pub b1: &'a [f32],
    pub w2: &'a [f32],
    pub b2: f32,
}

impl ValueHead<'_> {
    /// The hidden layer's output and the value, for one row's pooled embedding `p`.
    fn forward(&self, p: &[f32]) -> (Vec<f32>, f32) {
        let hidden: Vec<f32> = self
            .w1
            .chunks_exact(p.len())
            .zip(self.b1)
            .map(|(w, b)| (b + w.iter().zip(p).map(|(a, x)| a * x).sum::<f32>()).max(0.0))
            .collect();
        let v = self.b2 + self.w2.iter().zip(&hidden).map(|(a, b)| a * b).sum::<f32>();
        (hidden, v)
    }
}

/// PPO's coefficients and the divisor of the minibatch's loss sums.
#[derive(Debug, Clone, Copy)]
pub struct PpoTerms {
    pub clip: f32,
    pub ent_coef: f32,
    pub vf_coef: f32,
    pub size: f32,
}

/// Every weight's gradient (PyTorch's layouts) and the minibatch's loss sums.
#[derive(Debug, Clone)]
pub struct PickGrads {
    pub layers: EntityLayerGrads,
    pub scorer_bias: Vec<f32>,
    pub value_w1: Vec<f32>,
    pub value_b1: Vec<f32>,
    pub value_w2: Vec<f32>,
    pub value_b2: f32,
    /// Sums over the rows: policy loss, value loss, entropy, approximate KL, clipped rows.
    pub stats: [f64; 5],
}

fn invalid(msg: String) -> SimError {
    SimError::InvalidConfig(msg)
}

/// Refuses a buffer whose length is not one value per row.
fn one_per_row(rows: usize, buffers: &[(&str, usize)]) -> SimResult<()> {
    match buffers.iter().find(|(_, len)| *len != rows) {
        None => Ok(()),
        Some((name, len)) => Err(invalid(format!("{name} holds {len} values for {rows} rows"))),
    }
}

fn all_finite(name: &str, v: &[f32]) -> SimResult<()> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(invalid(format!("{name}[{i}] is not finite"))),
    }
}

impl PickBatch {
    /// Packs the rows' windows (`obs` rows x window x 8 features, `mask` rows x window) and
    /// checks each row's action (its slot in the window) against the mask.
    pub fn new(
        window: usize,
        obs: &[f32],
        mask: &[i8],
        actions: &[i64],
        old_logprob: Vec<f32>,
        targets: Vec<f32>,
    ) -> SimResult<Self> {
        let slots = Slots::pack_rows(obs, mask, window)?;
        let rows = slots.offsets.len() - 1;
        one_per_row(rows, &[
            ("actions", actions.len()),
            ("old_logprob", old_logprob.len()),
            ("targets", targets.len()),
        ])?;
        all_finite("old_logprob", &old_logprob)?;
        all_finite("targets", &targets)?;
        let mut action_at = Vec::with_capacity(rows);
        for (r, &action) in actions.iter().enumerate() {
            let (lo, hi) = (slots.offsets[r] as usize, slots.offsets[r + 1] as usize);
            let at = if slots.allowed[lo..hi].iter().all(|&a| a == 0) {
                // Nothing allowed: PyTorch's distribution is uniform, whatever the action.
                Some(-1)
            } else {
                (lo..hi)
                    .find(|&i| i64::from(slots.slot[i]) == action && slots.allowed[i] != 0)
                    .map(|i| (i - lo) as i64)
            };
            action_at.push(at.ok_or_else(|| {
                invalid(format!("row {r}'s action {action} is not one of its allowed slots"))
            })?);
        }
        let Slots { x, offsets, filled, allowed, .. } = slots;
        Ok(Self { x, offsets, filled, allowed, action_at, old_logprob, targets })
    }

    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// A minibatch's rows gathered from the batch, packed as `EntityLayers` reads them.
struct Gathered {
    x: Vec<f32>,
    offsets: Vec<i64>,
    weight: Vec<f32>,
    scored: Vec<i8>,
}

impl Gathered {
    fn new(batch: &PickBatch, rows: &[usize]) -> Self {
        let total: usize = rows
            .iter()
            .map(|&r| (batch.offsets[r + 1] - batch.offsets[r]) as usize)
            .sum();
        let inputs = PICK_INPUTS;
        let mut g = Gathered {
            x: Vec::with_capacity(total * inputs),
            offsets: Vec::with_capacity(rows.len() + 1),
            weight: Vec::with_capacity(total),
            scored: Vec::with_capacity(total),
        };
        g.offsets.push(0);
        for &r in rows {
            let (lo, hi) = (batch.offsets[r] as usize, batch.offsets[r + 1] as usize);
            g.x.extend_from_slice(&batch.x[lo * inputs..hi * inputs]);
            push_mean_weights(&mut g.weight, &batch.filled[lo..hi]);
            g.scored.extend_from_slice(&batch.allowed[lo..hi]);
            g.offsets.push(g.offsets.last().expect("not empty") + (hi - lo) as i64);
        }
        g
    }

    fn entities(&self) -> Entities<'_> {
        Entities { x: &self.x, offsets: &self.offsets, weight: &self.weight, scored: &self.scored }
    }
}

/// The value head's gradient sums over a minibatch.
struct HeadSums {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: f32,
}

/// One row's loss terms and the gradients of its logits (`g_logits`, over its slots) and
/// of its value.
struct RowLoss {
    pg: f32,
    entropy: f32,
    logratio: f32,
    ratio: f32,
}

/// A row with every action masked, as PyTorch scores it: its logits are all MASKED_LOGIT
/// (-1e9), whose log-sum-exp rounds back to -1e9 in float32, so every normalised logit is 0:
/// each action's log-probability is 0 and the entropy 0, and no gradient reaches a logit.
/// The draw itself is uniform over the window (each probability 1 / window).
const NO_CHOICE_LOGPROB: f32 = 0.0;

/// What a row's policy terms read beside its slots' logits.
struct RowTaken {
    /// The action's place among the row's slots; -1 where none was allowed.
    action: i64,
    old_logprob: f32,
    adv: f32,
}

/// PPO's per-row policy terms over the row's slots, writing each allowed slot's logit
/// gradient into `g_logits` (the others are left at 0).
fn policy_row(logits: &[f32], allowed: &[i8], taken: RowTaken, terms: &PpoTerms,
              g_logits: &mut [f32]) -> RowLoss {
    let RowTaken { action, old_logprob: old, adv } = taken;
    if action < 0 {
        // Every action masked: nothing to learn, and what PyTorch reports (see NO_CHOICE).
        let logratio = NO_CHOICE_LOGPROB - old;
        let ratio = logratio.exp();
        let pg = (-adv * ratio).max(-adv * ratio.clamp(1.0 - terms.clip, 1.0 + terms.clip));
        return RowLoss { pg, entropy: 0.0, logratio, ratio };
    }
    let mut max = f32::NEG_INFINITY;
    for (l, &a) in logits.iter().zip(allowed) {
        if a != 0 {
            max = max.max(*l);
        }
    }
    // Each allowed slot's exp(l - max), kept in g_logits until its gradient replaces it:
    // one exponential a slot, not one per use.
    let mut sum = 0.0f32;
    for ((l, &a), g) in logits.iter().zip(allowed).zip(g_logits.iter_mut()) {
        if a != 0 {
            *g = (l - max).exp();
            sum += *g;
        }
    }
    let lse = max + sum.ln();
    let mut entropy = 0.0f32;
    for ((l, &a), g) in logits.iter().zip(allowed).zip(g_logits.iter()) {
        if a != 0 {
            entropy -= g / sum * (l - lse);
        }
    }
    let logp = logits[action as usize] - lse;
    let logratio = logp - old;
    let ratio = logratio.exp();
    let (lo, hi) = (1.0 - terms.clip, 1.0 + terms.clip);
    let (plain, clipped) = (-adv * ratio, -adv * ratio.clamp(lo, hi));
    let in_range = ratio >= lo && ratio <= hi;
    // d max(plain, clipped) / d ratio, with PyTorch's halves on a tie.
    let g_ratio = if plain > clipped {
        -adv
    } else if plain < clipped {
        if in_range { -adv } else { 0.0 }
    } else {
        0.5 * -adv + if in_range { 0.5 * -adv } else { 0.0 }
    };
    let g_logp = g_ratio * ratio / terms.size;
    let g_entropy = terms.ent_coef / terms.size; // d(-ent_coef H / size) / d l_i = g_entropy p_i (log p_i + H)
    for (i, ((l, &a), g)) in logits.iter().zip(allowed).zip(g_logits.iter_mut()).enumerate() {
        if a != 0 {
            let logp_i = l - lse;
            let p = *g / sum;
            let chosen = if i as i64 == action { 1.0 } else { 0.0 };
            *g = g_logp * (chosen - p) + g_entropy * p * (logp_i + entropy);
        }
    }
    RowLoss { pg: plain.max(clipped), entropy, logratio, ratio }
}

/// The value head on one row's pooled embedding `p`: adds its weights' gradients of
/// `vf_coef / 2 (v - target)^2 / size` to `head`, writes the gradient of `p` into `g_p`, and
/// returns the error `v - target`.
fn value_row(value: &ValueHead<'_>, p: &[f32], target: f32, terms: &PpoTerms,
             head: &mut HeadSums, g_p: &mut [f32]) -> f32 {
    let h = p.len();
    let (hidden, v) = value.forward(p);
    let error = v - target;
    let g_v = terms.vf_coef * error / terms.size;
    head.b2 += g_v;
    let rows = value.w1.chunks_exact(h).zip(head.w1.chunks_exact_mut(h));
    for (o, (w, sums)) in rows.enumerate() {
        head.w2[o] += g_v * hidden[o];
        // ReLU's gradient is 0 where its output is, as PyTorch's.
        let g = if hidden[o] > 0.0 { g_v * value.w2[o] } else { 0.0 };
        head.b1[o] += g;
        if g != 0.0 {
            for i in 0..h {
                sums[i] += g * p[i];
                g_p[i] += g * w[i];
            }
        }
    }
    error
}

fn check_weights(layers: &EntityLayers, scorer_bias: &[f32], value: &ValueHead<'_>) -> SimResult<()> {
    let h = layers.hidden();
    if layers.inputs() != PICK_INPUTS {
        return Err(invalid(format!(
            "the layers read {} inputs; a pick slot has {PICK_INPUTS}",
            layers.inputs()
        )));
    }
    check("scorer_bias", scorer_bias, h)?;
    check("value w1", value.w1, h * h)?;
    check("value b1", value.b1, h)?;
    check("value w2", value.w2, h)?;
    check("value b2", &[value.b2], 1)
}

/// Loss sums and every gradient of one minibatch: `rows` index the batch, `adv` holds each
/// row's (already normalised) advantage. `scorer_bias` is the scorer's hidden bias, the
/// `share` every row adds there.
pub fn minibatch(
    layers: &EntityLayers,
    scorer_bias: &[f32],
    value: &ValueHead<'_>,
    batch: &PickBatch,
    rows: &[i64],
    adv: &[f32],
    terms: PpoTerms,
) -> SimResult<PickGrads> {
    let h = layers.hidden();
    check_weights(layers, scorer_bias, value)?;
    if adv.len() != rows.len() {
        return Err(invalid(format!("{} advantages for {} rows", adv.len(), rows.len())));
    }
    all_finite("adv", adv)?;
    let coefs = [terms.clip, terms.ent_coef, terms.vf_coef, terms.size];
    if coefs.iter().any(|c| !c.is_finite()) || terms.size <= 0.0 || terms.clip < 0.0 {
        return Err(invalid("clip, coefficients and size must be finite; size positive, clip not negative".into()));
    }
    let n = batch.rows();
    let rows: Vec<usize> = rows
        .iter()
        .map(|&r| usize::try_from(r).ok().filter(|&r| r < n))
        .collect::<Option<_>>()
        .ok_or_else(|| invalid(format!("row indices must lie in 0..{n}")))?;

    let gathered = Gathered::new(batch, &rows);
    let share: Vec<f32> = (0..rows.len()).flat_map(|_| scorer_bias.iter().copied()).collect();
    let head = PpoHead { batch, rows: &rows, offsets: &gathered.offsets, scored: &gathered.scored,
                         adv, terms, value };
    let (layer_grads, g_share, (sums, stats)) = layers.train(gathered.entities(), &share, &head)?;
    let mut scorer_bias_grad = vec![0.0f32; h];
    for g in g_share.chunks_exact(h) {
        scorer_bias_grad.iter_mut().zip(g).for_each(|(s, v)| *s += v);
    }
    Ok(PickGrads {
        layers: layer_grads,
        scorer_bias: scorer_bias_grad,
        value_w1: sums.w1,
        value_b1: sums.b1,
        value_w2: sums.w2,
        value_b2: sums.b2,
        stats,
    })
}

/// PPO's loss on each row of a minibatch, for `EntityLayers::train`: the policy terms over
/// the row's allowed slots, the value head on its pooled vector, and the loss sums.
struct PpoHead<'a> {
    batch: &'a PickBatch,
    /// The minibatch's rows of the batch, and their gathered slots' offsets and flags.
    rows: &'a [usize],
    offsets: &'a [i64],
    scored: &'a [i8],
    adv: &'a [f32],
    terms: PpoTerms,
    value: &'a ValueHead<'a>,
}

impl RowHead for PpoHead<'_> {
    type Acc = (HeadSums, [f64; 5]);

    fn start(&self) -> Self::Acc {
        let h = self.value.b1.len();
        (HeadSums { w1: vec![0.0; h * h], b1: vec![0.0; h], w2: vec![0.0; h], b2: 0.0 }, [0.0; 5])
    }

    fn row(&self, k: usize, logits: &[f32], pooled: &[f32], g_logits: &mut [f32],
           g_pooled: &mut [f32], (head, stats): &mut Self::Acc) {
        let r = self.rows[k];
        let (lo, hi) = (self.offsets[k] as usize, self.offsets[k + 1] as usize);
        let taken = RowTaken {
            action: self.batch.action_at[r],
            old_logprob: self.batch.old_logprob[r],
            adv: self.adv[k],
        };
        let terms = &self.terms;
        let row = policy_row(logits, &self.scored[lo..hi], taken, terms, g_logits);
        let error = value_row(self.value, pooled, self.batch.targets[r], terms, head, g_pooled);
        stats[0] += f64::from(row.pg);
        stats[1] += 0.5 * f64::from(error) * f64::from(error);
        stats[2] += f64::from(row.entropy);
        stats[3] += f64::from((row.ratio - 1.0) - row.logratio);
        stats[4] += f64::from(u8::from((row.ratio - 1.0).abs() > terms.clip));
    }

    fn merge(&self, (total, stats): &mut Self::Acc, (part, part_stats): Self::Acc) {
        let pairs = [(&mut total.w1, &part.w1), (&mut total.b1, &part.b1), (&mut total.w2, &part.w2)];
        for (a, b) in pairs {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        total.b2 += part.b2;
        stats.iter_mut().zip(part_stats).for_each(|(x, y)| *x += y);
    }
}

/// A rollout step under the current weights, drawn as `MaskedPolicy.sample` draws from
/// `uniforms` (one in [0, 1) a row): each row's action (its slot in the window), that
/// action's log-probability and the row's value.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    layers: &EntityLayers,
    scorer_bias: &[f32],
    value: &ValueHead<'_>,
    window: usize,
    obs: &[f32],
    mask: &[i8],
    uniforms: &[f32],
    actions: &mut [i64],
    logprobs: &mut [f32],
    values: &mut [f32],
) -> SimResult<()> {
    check_weights(layers, scorer_bias, value)?;
    let slots = Slots::pack_rows(obs, mask, window)?;
    let rows = slots.offsets.len() - 1;
    one_per_row(rows, &[
        ("uniforms", uniforms.len()),
        ("actions", actions.len()),
        ("logprobs", logprobs.len()),
        ("values", values.len()),
    ])?;
    if let Some(r) = uniforms.iter().position(|u| !(0.0..1.0).contains(u)) {
        return Err(invalid(format!("uniforms[{r}] is not in [0, 1)")));
    }
    let h = layers.hidden();
    let weight = slots.weights();
    let entities = Entities {
        x: &slots.x,
        offsets: &slots.offsets,
        weight: &weight,
        scored: &slots.allowed,
    };
    let share: Vec<f32> = (0..rows).flat_map(|_| scorer_bias.iter().copied()).collect();
    let mut logits = vec![0.0f32; weight.len()];
    let mut pooled = vec![0.0f32; rows * h];
    layers.forward(entities, &share, &mut logits, &mut pooled)?;
    for r in 0..rows {
        let (lo, hi) = (slots.offsets[r] as usize, slots.offsets[r + 1] as usize);
        values[r] = value.forward(&pooled[r * h..(r + 1) * h]).1;
        let (action, logprob) = draw(&logits[lo..hi], &slots.allowed[lo..hi], &slots.slot[lo..hi],
                                     window, uniforms[r]);
        actions[r] = action;
        logprobs[r] = logprob;
    }
    Ok(())
}

/// One row's action by inverse CDF, as `inverse_cdf` (app/training/policy.py) draws it: the
/// first allowed slot whose cumulative probability passes `u` times the total, the likeliest
/// slot should rounding carry past the last; with nothing allowed, uniform over the window
/// (`NO_CHOICE_LOGPROB`).
fn draw(logits: &[f32], allowed: &[i8], slot: &[u32], window: usize, u: f32) -> (i64, f32) {
    if allowed.iter().all(|&a| a == 0) {
        let action = ((u * window as f32) as usize).min(window - 1);
        return (action as i64, NO_CHOICE_LOGPROB);
    }
    let scored = || logits.iter().zip(allowed).enumerate().filter(|(_, (_, &a))| a != 0);
    let (mut best, mut max) = (0, f32::NEG_INFINITY);
    for (i, (&l, _)) in scored() {
        if l > max {
            (best, max) = (i, l);
        }
    }
    let probs: Vec<(usize, f32)> = scored().map(|(i, (&l, _))| (i, (l - max).exp())).collect();
    let total: f32 = probs.iter().map(|(_, p)| p).sum();
    let lse = max + total.ln();
    let target = u * total;
    let mut cumulative = 0.0f32;
    let chosen = probs
        .iter()
        .find(|(_, p)| {
            cumulative += p;
            cumulative > target
        })
        .map_or(best, |&(i, _)| i);
    (i64::from(slot[chosen]), logits[chosen] - lse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const H: usize = 8;
    const WINDOW: usize = 6;

    struct Case {
        layers_w: Vec<Vec<f32>>,
        bias: Vec<f32>,
        v1: Vec<f32>,
        vb1: Vec<f32>,
        v2: Vec<f32>,
        obs: Vec<f32>,
        mask: Vec<i8>,
        actions: Vec<i64>,
        old: Vec<f32>,
        targets: Vec<f32>,
        adv: Vec<f32>,
    }

    fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
    }

    /// `rows` windows of 6 slots, each filled at random and allowed if filled (and now and
    /// then not), so that some rows allow nothing.
    fn case(seed: u64, rows: usize) -> Case {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers_w = vec![
            random(&mut rng, H * PICK_INPUTS, 0.8),
            random(&mut rng, H, 0.3),
            random(&mut rng, H * H, 0.5),
            random(&mut rng, H, 0.3),
            random(&mut rng, H * H, 0.5),
            random(&mut rng, H, 0.5),
        ];
        let (mut obs, mut mask, mut actions) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rows {
            let mut choices = Vec::new();
            for slot in 0..WINDOW {
                let filled = rng.gen_bool(0.6);
                let mut job: Vec<f32> = (0..JOB_FEATURES).map(|_| rng.gen_range(0.0..1.0f32)).collect();
                job[JOB_FEATURES - 1] = if filled { rng.gen_range(0.1..1.0) } else { 0.0 };
                obs.extend(job);
                let allowed = filled && rng.gen_bool(0.7);
                mask.push(i8::from(allowed));
                if allowed {
                    choices.push(slot as i64);
                }
            }
            actions.push(if choices.is_empty() { 0 } else { choices[rng.gen_range(0..choices.len())] });
        }
        Case {
            layers_w,
            bias: random(&mut rng, H, 0.3),
            v1: random(&mut rng, H * H, 0.5),
            vb1: random(&mut rng, H, 0.3),
            v2: random(&mut rng, H, 0.5),
            old: (0..rows).map(|_| rng.gen_range(-2.5f32..-0.1)).collect(),
            targets: random(&mut rng, rows, 2.0),
            adv: random(&mut rng, rows, 1.5),
            obs,
            mask,
            actions,
        }
    }

    fn layers(c: &Case) -> EntityLayers {
        let w = &c.layers_w;
        EntityLayers::new(&w[0], &w[1], &w[2], &w[3], &w[4], &w[5], 0.1).unwrap()
    }

    fn value(c: &Case) -> ValueHead<'_> {
        ValueHead { w1: &c.v1, b1: &c.vb1, w2: &c.v2, b2: 0.05 }
    }

    fn batch(c: &Case) -> PickBatch {
        PickBatch::new(WINDOW, &c.obs, &c.mask, &c.actions, c.old.clone(), c.targets.clone())
            .unwrap()
    }

    fn run(c: &Case, rows: &[i64], terms: PpoTerms) -> PickGrads {
        let adv: Vec<f32> = rows.iter().map(|&r| c.adv[r as usize]).collect();
        minibatch(&layers(c), &c.bias, &value(c), &batch(c), rows, &adv, terms).unwrap()
    }

    /// The loss as `Trainer._update` sums it, from the stats.
    fn loss(g: &PickGrads, t: &PpoTerms) -> f64 {
        let s = g.stats;
        (s[0] - f64::from(t.ent_coef) * s[2] + f64::from(t.vf_coef) * s[1]) / f64::from(t.size)
    }

    /// The case with one weight moved by `delta`.
    fn perturbed(seed: u64, rows: usize, name: &str, at: usize, delta: f32) -> Case {
        let mut c = case(seed, rows);
        let w = match name {
            "v1" => &mut c.v1[at],
            "vb1" => &mut c.vb1[at],
            "v2" => &mut c.v2[at],
            "bias" => &mut c.bias[at],
            "w1" => &mut c.layers_w[0][at],
            _ => &mut c.layers_w[4][at],
        };
        *w += delta;
        c
    }

    #[test]
    fn gradients_match_finite_differences_of_the_loss() {
        // A clip range wide enough that no row is clipped, and a narrow one.
        for (seed, clip) in [(1u64, 10.0f32), (2, 0.05)] {
            let rows: Vec<i64> = (0..24).rev().collect();
            let terms = PpoTerms { clip, ent_coef: 0.03, vf_coef: 0.7, size: 30.0 };
            let g = run(&case(seed, 24), &rows, terms);
            let eps = 1e-2f32;
            for (name, at) in [("v1", 3), ("vb1", 2), ("v2", 1), ("bias", 5), ("w1", 6), ("ws", 9)] {
                let up = loss(&run(&perturbed(seed, 24, name, at, eps), &rows, terms), &terms);
                let down = loss(&run(&perturbed(seed, 24, name, at, -eps), &rows, terms), &terms);
                let numeric = (up - down) / (2.0 * f64::from(eps));
                let analytic = f64::from(match name {
                    "v1" => g.value_w1[at],
                    "vb1" => g.value_b1[at],
                    "v2" => g.value_w2[at],
                    "bias" => g.scorer_bias[at],
                    "w1" => g.layers.w1[at],
                    _ => g.layers.ws[at],
                });
                assert!((numeric - analytic).abs() < 2e-3 + 0.02 * analytic.abs(),
                        "{name}[{at}] clip {clip}: numeric {numeric} analytic {analytic}");
            }
        }
    }

    #[test]
    fn a_row_that_allows_nothing_has_no_entropy_and_no_gradient() {
        let mut c = case(3, 40);
        let r = 7;
        c.mask[r * WINDOW..(r + 1) * WINDOW].fill(0);
        c.adv[r] = 0.0;
        let terms = PpoTerms { clip: 0.2, ent_coef: 0.0, vf_coef: 0.0, size: 1.0 };
        let g = run(&c, &[r as i64], terms);
        assert_eq!(g.stats[2], 0.0, "entropy");
        assert!(g.layers.w1.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn sampling_draws_allowed_slots_whose_log_probability_the_update_recomputes() {
        let c = case(5, 64);
        let uniforms: Vec<f32> = (0..64).map(|i| (i as f32 + 0.5) / 64.0).collect();
        let (mut actions, mut logprobs, mut values) = (vec![0i64; 64], vec![0f32; 64], vec![0f32; 64]);
        sample(&layers(&c), &c.bias, &value(&c), WINDOW, &c.obs, &c.mask, &uniforms, &mut actions,
               &mut logprobs, &mut values).unwrap();
        for r in 0..64 {
            let allowed = &c.mask[r * WINDOW..(r + 1) * WINDOW];
            assert!(allowed.iter().all(|&a| a == 0) || allowed[actions[r] as usize] != 0,
                    "row {r} drew a masked slot");
        }
        // Scored again under the same weights, each drawn action's ratio is 1.
        let replayed = Case { actions: actions.clone(), old: logprobs.clone(), ..case(5, 64) };
        let rows: Vec<i64> = (0..64).collect();
        let g = run(&replayed, &rows, PpoTerms { clip: 0.2, ent_coef: 0.0, vf_coef: 1.0, size: 64.0 });
        assert!(g.stats[3].abs() < 1e-5, "approx kl {}", g.stats[3]);
        assert_eq!(g.stats[4], 0.0);
        // The value the sampler returned is the one the update regresses.
        let errors: f64 = values.iter().zip(&c.targets).map(|(v, t)| 0.5 * f64::from(v - t).powi(2)).sum();
        assert!((errors - g.stats[1]).abs() < 1e-4 * errors.max(1.0));
    }

    #[test]
    fn refuses_bad_actions_rows_and_values() {
        let c = case(4, 8);
        let r = (0..8).find(|&r| c.mask[r * WINDOW..(r + 1) * WINDOW].iter().any(|&a| a != 0)).unwrap();
        let masked = (0..WINDOW).find(|&s| c.mask[r * WINDOW + s] == 0).unwrap();
        let mut actions = c.actions.clone();
        actions[r] = masked as i64;
        assert!(PickBatch::new(WINDOW, &c.obs, &c.mask, &actions, c.old.clone(), c.targets.clone()).is_err());
        let mut obs = c.obs.clone();
        obs[3] = f32::NAN;
        assert!(PickBatch::new(WINDOW, &obs, &c.mask, &c.actions, c.old.clone(), c.targets.clone()).is_err());
        assert!(PickBatch::new(5, &c.obs, &c.mask, &c.actions, c.old.clone(), c.targets.clone()).is_err());
        let terms = PpoTerms { clip: 0.2, ent_coef: 0.0, vf_coef: 0.5, size: 1.0 };
        let (l, v, b) = (layers(&c), value(&c), batch(&c));
        assert!(minibatch(&l, &c.bias, &v, &b, &[8], &[0.0], terms).is_err());
        assert!(minibatch(&l, &c.bias, &v, &b, &[-1], &[0.0], terms).is_err());
        assert!(minibatch(&l, &c.bias, &v, &b, &[0], &[f32::INFINITY], terms).is_err());
        let nan = PpoTerms { size: f32::NAN, ..terms };
        assert!(minibatch(&l, &c.bias, &v, &b, &[0], &[0.0], nan).is_err());
        let (mut a, mut p, mut vs) = (vec![0i64; 8], vec![0f32; 8], vec![0f32; 8]);
        assert!(sample(&l, &c.bias, &v, WINDOW, &c.obs, &c.mask, &[1.0; 8], &mut a, &mut p, &mut vs).is_err());
    }
}
