//! The `place` policy's forward pass, for inference: the same function as Oppen's
//! `PlacePolicy` (app/training/policy.py), one masked logit per host.
//!
//! Per host: its 6 inputs (4 observed features, then free cores and memory) -> hidden (ReLU)
//! -> hidden (ReLU, plus the job's share, computed once per row) -> one logit. NumPy and
//! PyTorch write and re-read `[rows, hosts, hidden]` intermediates, and on a CPU that memory
//! traffic, not the arithmetic, is what a batch of decisions costs. Here a host's hidden
//! vectors live in registers: the width is a compile-time constant, the network's hidden
//! size padded with zero weights up to the next one (which adds exact zeros, so the padded
//! network computes the same function).

use rayon::prelude::*;

use crate::error::{SimError, SimResult};
use crate::envs::place_env::{HOST_FEATURES, JOB_FEATURES};

pub(crate) const HOST_INPUTS: usize = 6;
/// What a masked host scores (`MASKED_LOGIT` in policy.py): finite, so argmax stays defined.
pub const MASKED_LOGIT: f32 = -1e9;
/// The compiled widths; a network of hidden size up to the last one is padded to the next.
const WIDTHS: [usize; 5] = [8, 16, 32, 64, 128];
/// Rows per parallel task: below this, splitting costs more than it saves.
const ROWS_PER_TASK: usize = 32;

/// The weights as PyTorch's `nn.Linear` holds them: each matrix `[out][in]`, row-major.
#[derive(Debug, Clone)]
pub struct PlaceWeights {
    pub hidden: usize,
    pub host_encoder: (Vec<f32>, Vec<f32>),
    pub job_encoder_1: (Vec<f32>, Vec<f32>),
    pub job_encoder_2: (Vec<f32>, Vec<f32>),
    pub score_host: (Vec<f32>, Vec<f32>),
    pub score_job: Vec<f32>,
    pub score_out: (Vec<f32>, f32),
}

/// The network, its matrices transposed to `[in][out]` and padded to `width`.
#[derive(Debug, Clone)]
pub struct PlaceNet {
    width: usize,
    host_w: Vec<f32>,
    host_b: Vec<f32>,
    job1_w: Vec<f32>,
    job1_b: Vec<f32>,
    job2_w: Vec<f32>,
    job2_b: Vec<f32>,
    score_host_w: Vec<f32>,
    score_host_b: Vec<f32>,
    score_job_w: Vec<f32>,
    out_w: Vec<f32>,
    out_b: f32,
    avx_fma: bool,
}

/// The compiled width a network of hidden size `h` is padded to.
pub(crate) fn width_for(h: usize) -> SimResult<usize> {
    WIDTHS.iter().copied().find(|&x| x >= h).ok_or_else(|| {
        SimError::InvalidConfig(format!(
            "hidden size {h} is over {}, the widest the fused place network supports",
            WIDTHS[WIDTHS.len() - 1]
        ))
    })
}

pub(crate) fn check(name: &str, v: &[f32], len: usize) -> SimResult<()> {
    if v.len() != len {
        return Err(SimError::InvalidConfig(format!(
            "{name} has {} values; a network of this hidden size needs {len}",
            v.len()
        )));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(SimError::InvalidConfig(format!(
            "{name} holds a NaN or infinite weight"
        )));
    }
    Ok(())
}

/// `[out][in]` (torch) to `[in][width]`, zero beyond `out` columns and `in` rows.
pub(crate) fn transpose_padded(w: &[f32], out: usize, inp: usize, rows: usize, width: usize) -> Vec<f32> {
    let mut t = vec![0.0; rows * width];
    for o in 0..out {
        for i in 0..inp {
            t[i * width + o] = w[o * inp + i];
        }
    }
    t
}

pub(crate) fn padded(v: &[f32], width: usize) -> Vec<f32> {
    let mut p = v.to_vec();
    p.resize(width, 0.0);
    p
}

impl PlaceNet {
    pub fn new(w: &PlaceWeights) -> SimResult<Self> {
        let h = w.hidden;
        if h == 0 {
            return Err(SimError::InvalidConfig(
                "hidden size must be positive".into(),
            ));
        }
        let width = width_for(h)?;
        check("host_encoder.weight", &w.host_encoder.0, h * HOST_INPUTS)?;
        check("host_encoder.bias", &w.host_encoder.1, h)?;
        check("job_encoder.0.weight", &w.job_encoder_1.0, h * JOB_FEATURES)?;
        check("job_encoder.0.bias", &w.job_encoder_1.1, h)?;
        check("job_encoder.2.weight", &w.job_encoder_2.0, h * h)?;
        check("job_encoder.2.bias", &w.job_encoder_2.1, h)?;
        check("score_host.weight", &w.score_host.0, h * h)?;
        check("score_host.bias", &w.score_host.1, h)?;
        check("score_job.weight", &w.score_job, h * h)?;
        check("score_out.weight", &w.score_out.0, h)?;
        check("score_out.bias", &[w.score_out.1], 1)?;
        Ok(Self {
            width,
            host_w: transpose_padded(&w.host_encoder.0, h, HOST_INPUTS, HOST_INPUTS, width),
            host_b: padded(&w.host_encoder.1, width),
            job1_w: transpose_padded(&w.job_encoder_1.0, h, JOB_FEATURES, JOB_FEATURES, width),
            job1_b: padded(&w.job_encoder_1.1, width),
            job2_w: transpose_padded(&w.job_encoder_2.0, h, h, width, width),
            job2_b: padded(&w.job_encoder_2.1, width),
            score_host_w: transpose_padded(&w.score_host.0, h, h, width, width),
            score_host_b: padded(&w.score_host.1, width),
            score_job_w: transpose_padded(&w.score_job, h, h, width, width),
            out_w: padded(&w.score_out.0, width),
            out_b: w.score_out.1,
            avx_fma: avx_fma_available(),
        })
    }

    /// Observation length for `hosts` hosts: 4 features per host, then the job's 2.
    pub fn obs_dim(hosts: usize) -> usize {
        hosts * HOST_FEATURES + JOB_FEATURES
    }

    /// Masked logits of a batch: `obs` `[rows][obs_dim(hosts)]`, `masks` and `out`
    /// `[rows][hosts]`, a mask value of 0 meaning not allowed.
    pub fn logits(&self, obs: &[f32], masks: &[i8], out: &mut [f32]) -> SimResult<()> {
        let (rows, hosts) = rows_and_hosts(obs, masks)?;
        if out.len() != masks.len() {
            return Err(SimError::InvalidConfig(format!(
                "the output holds {} values; {rows} rows of {hosts} hosts need {}",
                out.len(),
                masks.len()
            )));
        }
        let run = |(o, (m, l)): (&[f32], (&[i8], &mut [f32]))| self.row(o, m, l);
        let dim = Self::obs_dim(hosts);
        if rows < 2 * ROWS_PER_TASK {
            obs.chunks(dim)
                .zip(masks.chunks(hosts).zip(out.chunks_mut(hosts)))
                .for_each(run);
        } else {
            obs.par_chunks(dim)
                .zip(masks.par_chunks(hosts).zip(out.par_chunks_mut(hosts)))
                .with_min_len(ROWS_PER_TASK)
                .for_each(run);
        }
        Ok(())
    }

    /// The highest-scoring allowed host of each row (the first of equals, as argmax); a row
    /// with nothing allowed gets host 0, every logit being equal.
    pub fn decide(&self, obs: &[f32], masks: &[i8], actions: &mut [i64]) -> SimResult<()> {
        let (rows, hosts) = rows_and_hosts(obs, masks)?;
        if actions.len() != rows {
            return Err(SimError::InvalidConfig(format!(
                "{} places for the actions; the observations hold {rows} rows",
                actions.len()
            )));
        }
        // One logits buffer per thread's run of rows, not one allocation per row.
        let buffer = || vec![0.0f32; hosts];
        let run = |logits: &mut Vec<f32>, (o, (m, a)): (&[f32], (&[i8], &mut i64))| {
            self.row(o, m, logits);
            *a = argmax(logits) as i64;
        };
        let dim = Self::obs_dim(hosts);
        if rows < 2 * ROWS_PER_TASK {
            let mut logits = buffer();
            obs.chunks(dim)
                .zip(masks.chunks(hosts).zip(actions.iter_mut()))
                .for_each(|item| run(&mut logits, item));
        } else {
            obs.par_chunks(dim)
                .zip(masks.par_chunks(hosts).zip(actions.par_iter_mut()))
                .with_min_len(ROWS_PER_TASK)
                .for_each_init(buffer, run);
        }
        Ok(())
    }

    fn row(&self, obs: &[f32], mask: &[i8], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx_fma {
            // Safety: the CPU was checked for AVX and FMA when the network was built.
            return unsafe { self.row_avx_fma(obs, mask, out) };
        }
        self.row_at::<false>(obs, mask, out)
    }

    /// The same code compiled for 8-wide vectors and fused multiply-adds: chosen at run
    /// time, so the extension stays portable to any x86-64.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx,fma")]
    unsafe fn row_avx_fma(&self, obs: &[f32], mask: &[i8], out: &mut [f32]) {
        self.row_at::<true>(obs, mask, out)
    }

    #[inline(always)]
    fn row_at<const FMA: bool>(&self, obs: &[f32], mask: &[i8], out: &mut [f32]) {
        match self.width {
            8 => self.row_w::<8, FMA>(obs, mask, out),
            16 => self.row_w::<16, FMA>(obs, mask, out),
            32 => self.row_w::<32, FMA>(obs, mask, out),
            64 => self.row_w::<64, FMA>(obs, mask, out),
            _ => self.row_w::<128, FMA>(obs, mask, out),
        }
    }

    #[inline(always)]
    fn row_w<const W: usize, const FMA: bool>(&self, obs: &[f32], mask: &[i8], out: &mut [f32]) {
        let hosts = mask.len();
        let job = &obs[hosts * HOST_FEATURES..];
        let host_w = self.host_w.as_chunks::<W>().0;
        let score_host_w = self.score_host_w.as_chunks::<W>().0;
        let vector = |v: &[f32]| -> [f32; W] { v.try_into().expect("padded to the width") };

        // The job's share of every host's score: once per row.
        let mut j1 = vector(&self.job1_b);
        for (x, w) in job.iter().zip(self.job1_w.as_chunks::<W>().0) {
            axpy::<W, FMA>(&mut j1, *x, w);
        }
        relu(&mut j1);
        let mut j2 = vector(&self.job2_b);
        for (x, w) in j1.iter().zip(self.job2_w.as_chunks::<W>().0) {
            axpy::<W, FMA>(&mut j2, *x, w);
        }
        relu(&mut j2);
        let mut share = vector(&self.score_host_b);
        for (x, w) in j2.iter().zip(self.score_job_w.as_chunks::<W>().0) {
            axpy::<W, FMA>(&mut share, *x, w);
        }
        let host_b = vector(&self.host_b);
        let out_w = vector(&self.out_w);

        let features = obs[..hosts * HOST_FEATURES].as_chunks::<HOST_FEATURES>().0;
        for ((f, &allowed), logit) in features.iter().zip(mask).zip(out.iter_mut()) {
            if allowed == 0 {
                *logit = MASKED_LOGIT;
                continue;
            }
            let mut h = host_b;
            for (xi, w) in host_inputs(f).iter().zip(host_w) {
                axpy::<W, FMA>(&mut h, *xi, w);
            }
            relu(&mut h);
            let mut s = share;
            for (hi, w) in h.iter().zip(score_host_w) {
                axpy::<W, FMA>(&mut s, *hi, w);
            }
            relu(&mut s);
            *logit = dot(&s, &out_w) + self.out_b;
        }
    }
}

#[inline(always)]
pub(crate) fn axpy<const W: usize, const FMA: bool>(acc: &mut [f32; W], x: f32, w: &[f32; W]) {
    #[cfg(target_arch = "x86_64")]
    if FMA && W.is_multiple_of(8) {
        // Whole 8-lane vectors, spelled out: left to itself, the compiler sometimes split
        // the accumulators into pairs of lanes (the training kernel's scorer ran at a third
        // of the speed). The same fused multiply-add per element, so the same results.
        use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_storeu_ps};
        // Safety: FMA is true only inside functions compiled for AVX and FMA, which run only
        // after the CPU was checked for both; every chunk of 8 lies within the arrays.
        unsafe {
            let xv = _mm256_set1_ps(x);
            for c in (0..W).step_by(8) {
                let sum = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w.as_ptr().add(c)),
                                          _mm256_loadu_ps(acc.as_ptr().add(c)));
                _mm256_storeu_ps(acc.as_mut_ptr().add(c), sum);
            }
        }
        return;
    }
    for k in 0..W {
        // mul_add is one instruction only where FMA is enabled; elsewhere a slow libm call.
        acc[k] = if FMA {
            x.mul_add(w[k], acc[k])
        } else {
            acc[k] + x * w[k]
        };
    }
}

#[inline(always)]
pub(crate) fn relu<const W: usize>(v: &mut [f32; W]) {
    for x in v.iter_mut() {
        // A comparison, not f32::max, so that it compiles to one vector max.
        *x = if *x > 0.0 { *x } else { 0.0 };
    }
}

/// `host_inputs` in policy.py: a host's 4 observed features (core and memory utilisation,
/// cores and memory), then its free cores and free memory on the same scale.
#[inline(always)]
pub(crate) fn host_inputs(f: &[f32; HOST_FEATURES]) -> [f32; HOST_INPUTS] {
    [
        f[0],
        f[1],
        f[2],
        f[3],
        f[2] * (1.0 - f[0]),
        f[3] * (1.0 - f[1]),
    ]
}

/// A dot product in 8 lanes, summed at the end: vectorised, where one running sum is not.
#[inline(always)]
pub(crate) fn dot<const W: usize>(a: &[f32; W], b: &[f32; W]) -> f32 {
    let mut lanes = [0.0f32; 8];
    for (ca, cb) in a.as_chunks::<8>().0.iter().zip(b.as_chunks::<8>().0) {
        for l in 0..8 {
            lanes[l] += ca[l] * cb[l];
        }
    }
    lanes.iter().sum()
}

pub(crate) fn avx_fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Rows and hosts per row of a batch: rows * (4 * hosts + 2) observation values and
/// rows * hosts mask values fix both.
pub(crate) fn rows_and_hosts(obs: &[f32], masks: &[i8]) -> SimResult<(usize, usize)> {
    let (o, m) = (obs.len(), masks.len());
    let extra = o.saturating_sub(HOST_FEATURES * m);
    let rows = extra / JOB_FEATURES;
    if m == 0 || rows == 0 || extra % JOB_FEATURES != 0 || m % rows != 0 {
        return Err(SimError::InvalidConfig(format!(
            "observations of {o} values and masks of {m} values are not whole rows \
             (each row: 4 observation values per host and 2 for the job, one mask value per host)"
        )));
    }
    Ok((rows, m / rows))
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    pub(crate) fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    fn weights(hidden: usize, seed: u64) -> PlaceWeights {
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        let h = hidden;
        PlaceWeights {
            hidden,
            host_encoder: (random(rng, h * HOST_INPUTS), random(rng, h)),
            job_encoder_1: (random(rng, h * JOB_FEATURES), random(rng, h)),
            job_encoder_2: (random(rng, h * h), random(rng, h)),
            score_host: (random(rng, h * h), random(rng, h)),
            score_job: random(rng, h * h),
            score_out: (random(rng, h), rng.gen_range(-1.0..1.0)),
        }
    }

    /// `y = relu?(W x + b)` with W `[out][in]`, in f64: the textbook definition.
    fn linear(w: &[f32], b: Option<&[f32]>, x: &[f64], out: usize, relu: bool) -> Vec<f64> {
        (0..out)
            .map(|o| {
                let v = b.map_or(0.0, |b| b[o] as f64)
                    + x.iter()
                        .enumerate()
                        .map(|(i, xi)| w[o * x.len() + i] as f64 * xi)
                        .sum::<f64>();
                if relu {
                    v.max(0.0)
                } else {
                    v
                }
            })
            .collect()
    }

    fn reference(w: &PlaceWeights, obs: &[f32], mask: &[i8]) -> Vec<f64> {
        let (h, hosts) = (w.hidden, mask.len());
        let job: Vec<f64> = obs[hosts * 4..].iter().map(|&x| x as f64).collect();
        let j = linear(&w.job_encoder_1.0, Some(&w.job_encoder_1.1), &job, h, true);
        let j = linear(&w.job_encoder_2.0, Some(&w.job_encoder_2.1), &j, h, true);
        let share = linear(&w.score_job, None, &j, h, false);
        (0..hosts)
            .map(|i| {
                if mask[i] == 0 {
                    return MASKED_LOGIT as f64;
                }
                let f = obs[i * 4..i * 4 + 4].try_into().unwrap();
                let x = host_inputs(f).map(|v| v as f64);
                let e = linear(&w.host_encoder.0, Some(&w.host_encoder.1), &x, h, true);
                let s: Vec<f64> = linear(&w.score_host.0, Some(&w.score_host.1), &e, h, false)
                    .iter()
                    .zip(&share)
                    .map(|(a, b)| (a + b).max(0.0))
                    .collect();
                linear(&w.score_out.0, Some(&[w.score_out.1]), &s, 1, false)[0]
            })
            .collect()
    }

    /// Random observations in [0, 1) and masks allowing 70% of hosts.
    pub(crate) fn batch(rows: usize, hosts: usize, seed: u64) -> (Vec<f32>, Vec<i8>) {
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        let obs = (0..rows * PlaceNet::obs_dim(hosts))
            .map(|_| rng.gen_range(0.0..1.0))
            .collect();
        let masks = (0..rows * hosts)
            .map(|_| i8::from(rng.gen_bool(0.7)))
            .collect();
        (obs, masks)
    }

    #[test]
    fn matches_the_textbook_network_at_every_width() {
        // Hidden sizes at, between and just past the compiled widths; batches below and above
        // the parallel threshold.
        for (hidden, rows) in [(1, 3), (8, 5), (13, 70), (16, 200), (33, 9), (128, 4)] {
            let w = weights(hidden, hidden as u64);
            // Both code paths: the portable one and, where the CPU has them, AVX and FMA.
            for avx_fma in [false, avx_fma_available()] {
                let net = PlaceNet {
                    avx_fma,
                    ..PlaceNet::new(&w).unwrap()
                };
                let hosts = 7;
                let (obs, masks) = batch(rows, hosts, 99);
                let mut out = vec![0.0; rows * hosts];
                net.logits(&obs, &masks, &mut out).unwrap();
                let dim = PlaceNet::obs_dim(hosts);
                for r in 0..rows {
                    let want = reference(
                        &w,
                        &obs[r * dim..(r + 1) * dim],
                        &masks[r * hosts..(r + 1) * hosts],
                    );
                    for (got, want) in out[r * hosts..(r + 1) * hosts].iter().zip(&want) {
                        let tol = 1e-4 * want.abs().max(1.0);
                        assert!(
                            (*got as f64 - want).abs() <= tol,
                            "hidden {hidden}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn decide_is_the_first_allowed_argmax() {
        let net = PlaceNet::new(&weights(16, 1)).unwrap();
        let (rows, hosts) = (150, 64);
        let (obs, mut masks) = batch(rows, hosts, 5);
        masks[..hosts].fill(0); // a row with nothing allowed
        let mut logits = vec![0.0; rows * hosts];
        let mut actions = vec![-1i64; rows];
        net.logits(&obs, &masks, &mut logits).unwrap();
        net.decide(&obs, &masks, &mut actions).unwrap();
        assert_eq!(actions[0], 0);
        for r in 1..rows {
            let row = &logits[r * hosts..(r + 1) * hosts];
            let a = actions[r] as usize;
            assert_eq!(masks[r * hosts + a], 1, "row {r} picked a masked host");
            assert!(row.iter().all(|&x| x <= row[a]));
            assert!(
                row[..a].iter().all(|&x| x < row[a]),
                "not the first of equals"
            );
        }
    }

    #[test]
    fn rejects_weights_and_buffers_of_the_wrong_shape() {
        let mut w = weights(16, 2);
        w.score_job.pop();
        assert!(PlaceNet::new(&w)
            .unwrap_err()
            .to_string()
            .contains("score_job.weight"));
        let mut w = weights(16, 2);
        w.host_encoder.1[3] = f32::NAN;
        assert!(PlaceNet::new(&w).unwrap_err().to_string().contains("NaN"));
        assert!(PlaceNet::new(&weights(129, 2))
            .unwrap_err()
            .to_string()
            .contains("129"));

        let net = PlaceNet::new(&weights(16, 2)).unwrap();
        let (obs, masks) = batch(3, 8, 1);
        let mut out = vec![0.0; 24];
        assert!(net.logits(&obs[1..], &masks, &mut out).is_err());
        assert!(net.logits(&obs, &masks[1..], &mut out[1..]).is_err());
        assert!(net.logits(&obs, &masks, &mut out[1..]).is_err());
        assert!(net.decide(&obs, &masks, &mut [0i64; 2]).is_err());
        assert!(net.logits(&[], &[], &mut []).is_err());
    }
}
