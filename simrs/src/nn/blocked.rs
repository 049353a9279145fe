//! Small dense matrix products over a row's entities, register-blocked: four rows of the
//! output and 16 of its columns live in eight AVX registers while the products stream
//! past, so each weight vector loaded serves four entities at once and a gradient sum is
//! read and written once per block of a row, not once per entity.
//!
//! `EntityLayers::train` (pick's training pass) runs its layers and its weight-gradient
//! sums through this one product. `forward` and `backward` (the hierarchical policy's
//! training and every rollout step) keep their sparse vector-at-a-time form: they were not
//! moved to it.

use crate::nn::place_net::axpy;

/// Output rows per block: 4 rows x 16 columns is 8 accumulators, which leaves AVX's other
/// 8 registers for the two right-hand vectors, the broadcasts and the loads in flight.
pub(crate) const BLOCK: usize = 4;

/// `out[r] += sum_k left[r * r_stride + k * k_stride] * right[k]` for every row `r` of `out`
/// and every `k < right.len()`.
///
/// The strides read `left` either way: `(depth, 1)` for a `[rows][depth]` matrix times
/// `right` (a layer over a block of entities), `(1, rows)` for the transpose of a
/// `[depth][rows]` matrix times `right` (a weight gradient summed over entities).
///
/// Inlined always, as the whole of it: only inside its caller's function, compiled for AVX
/// and FMA, do the intrinsics below become single instructions.
#[inline(always)]
pub(crate) fn accumulate<const W: usize, const FMA: bool>(
    left: &[f32],
    (r_stride, k_stride): (usize, usize),
    right: &[[f32; W]],
    out: &mut [[f32; W]],
) {
    let (rows, depth) = (out.len(), right.len());
    if rows == 0 || depth == 0 {
        return;
    }
    // Every read of `left` checked here once: the blocks below index it unchecked.
    let last = (rows - 1) * r_stride + (depth - 1) * k_stride;
    assert!(last < left.len(), "left holds {} values; the product reads up to {last}", left.len());
    let mut blocks = out.chunks_exact_mut(BLOCK);
    let mut first = 0;
    for block in &mut blocks {
        let block: &mut [[f32; W]; BLOCK] = block.try_into().expect("chunks of BLOCK");
        rows_at::<W, FMA, BLOCK>(left, first, (r_stride, k_stride), right, block);
        first += BLOCK;
    }
    for row in blocks.into_remainder() {
        rows_at::<W, FMA, 1>(left, first, (r_stride, k_stride), right, std::array::from_mut(row));
        first += 1;
    }
}

/// `R` rows of the product, starting at row `first`.
#[inline(always)]
fn rows_at<const W: usize, const FMA: bool, const R: usize>(
    left: &[f32],
    first: usize,
    strides: (usize, usize),
    right: &[[f32; W]],
    out: &mut [[f32; W]; R],
) {
    #[cfg(target_arch = "x86_64")]
    if FMA && W.is_multiple_of(8) {
        // Safety: FMA is true only inside functions compiled for AVX and FMA, which run only
        // after the CPU was checked for both; `accumulate` checked every read of `left`.
        unsafe { avx_rows::<W, R>(left, first, strides, right, out) };
        return;
    }
    let (r_stride, k_stride) = strides;
    for (k, w) in right.iter().enumerate() {
        for (r, row) in out.iter_mut().enumerate() {
            axpy::<W, FMA>(row, left[(first + r) * r_stride + k * k_stride], w);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn avx_rows<const W: usize, const R: usize>(
    left: &[f32],
    first: usize,
    (r_stride, k_stride): (usize, usize),
    right: &[[f32; W]],
    out: &mut [[f32; W]; R],
) {
    use std::arch::x86_64::{
        __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };
    // Two vectors of columns at a time where the width allows (every width but 8).
    let pair = W.is_multiple_of(16);
    let step = if pair { 16 } else { 8 };
    let base = left.as_ptr().add(first * r_stride);
    for c in (0..W).step_by(step) {
        let mut acc: [[__m256; 2]; R] = [[_mm256_setzero_ps(); 2]; R];
        for (r, row) in out.iter().enumerate() {
            acc[r][0] = _mm256_loadu_ps(row.as_ptr().add(c));
            if pair {
                acc[r][1] = _mm256_loadu_ps(row.as_ptr().add(c + 8));
            }
        }
        let mut at = base;
        for w in right {
            let lo = _mm256_loadu_ps(w.as_ptr().add(c));
            let hi = if pair { _mm256_loadu_ps(w.as_ptr().add(c + 8)) } else { lo };
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*at.add(r * r_stride));
                acc[0] = _mm256_fmadd_ps(x, lo, acc[0]);
                if pair {
                    acc[1] = _mm256_fmadd_ps(x, hi, acc[1]);
                }
            }
            at = at.add(k_stride);
        }
        for (r, row) in out.iter_mut().enumerate() {
            _mm256_storeu_ps(row.as_mut_ptr().add(c), acc[r][0]);
            if pair {
                _mm256_storeu_ps(row.as_mut_ptr().add(c + 8), acc[r][1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::place_net::tests::random;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn reference<const W: usize>(left: &[f32], strides: (usize, usize), right: &[[f32; W]],
                                 out: &[[f32; W]]) -> Vec<[f64; W]> {
        out.iter().enumerate().map(|(r, row)| {
            let mut sum = row.map(f64::from);
            for (k, w) in right.iter().enumerate() {
                let x = f64::from(left[r * strides.0 + k * strides.1]);
                for c in 0..W {
                    sum[c] += x * f64::from(w[c]);
                }
            }
            sum
        }).collect()
    }

    fn check<const W: usize, const FMA: bool>(rows: usize, depth: usize, transposed: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64((rows * 1000 + depth) as u64);
        let left = random(&mut rng, rows * depth);
        let right: Vec<[f32; W]> = (0..depth)
            .map(|_| random(&mut rng, W).try_into().unwrap())
            .collect();
        let mut out: Vec<[f32; W]> = (0..rows).map(|_| random(&mut rng, W).try_into().unwrap()).collect();
        let strides = if transposed { (1, rows) } else { (depth, 1) };
        let expected = reference(&left, strides, &right, &out);
        accumulate::<W, FMA>(&left, strides, &right, &mut out);
        for (got, want) in out.iter().zip(&expected) {
            for c in 0..W {
                assert!((f64::from(got[c]) - want[c]).abs() < 1e-5 * (1.0 + want[c].abs()),
                        "W {W}, {rows} x {depth}, transposed {transposed}: {} against {}",
                        got[c], want[c]);
            }
        }
    }

    fn every_shape<const W: usize, const FMA: bool>() {
        for rows in [1, 3, 4, 5, 9, 16] {
            for depth in [1, 7, 16, 33] {
                check::<W, FMA>(rows, depth, false);
                check::<W, FMA>(rows, depth, true);
            }
        }
    }

    #[test]
    fn matches_the_definition_at_every_width_and_shape() {
        every_shape::<8, false>();
        every_shape::<16, false>();
        every_shape::<32, false>();
        every_shape::<64, false>();
        every_shape::<128, false>();
        if crate::nn::place_net::avx_fma_available() {
            // Safety: the CPU has AVX and FMA.
            unsafe { avx_every_shape() };
        }
    }

    #[target_feature(enable = "avx,fma")]
    unsafe fn avx_every_shape() {
        every_shape::<8, true>();
        every_shape::<16, true>();
        every_shape::<32, true>();
        every_shape::<64, true>();
        every_shape::<128, true>();
    }

    #[test]
    #[should_panic(expected = "the product reads up to")]
    fn refuses_a_left_matrix_too_short_for_its_strides() {
        let right = [[1.0f32; 8]; 3];
        let mut out = [[0.0f32; 8]; 2];
        accumulate::<8, false>(&[0.0; 5], (3, 1), &right, &mut out);
    }
}
