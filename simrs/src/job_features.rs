//! The per-job observation row shared by the `pick` and `hierarchical` modes: RLScheduler's
//! eight features, each in [0, 1].
//!
//! 0 wait / 12 h, 1 requested time / episode's longest request, 2 cores / largest host's
//! cores, 3 memory / episode's largest memory (1 when unknown), 4 user id / largest,
//! 5 group id / largest, 6 executable id / largest (1 when unknown), 7 can start now
//! (1 - 1e-5 or 1e-5). An empty slot is `[0, 1, 1, 1, 1, 1, 1, 0]`.

use crate::job::Job;

pub const JOB_FEATURES: usize = 8;
const MAX_WAIT_S: f32 = 12.0 * 3600.0;
const ALMOST_ONE: f32 = 1.0 - 1e-5;
pub const EMPTY_SLOT: [f32; JOB_FEATURES] = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0];

/// Reciprocal scales, computed once per episode.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobScales {
    inv_requested: f32,
    inv_cores: f32,
    inv_mem: f32,
    inv_user: f32,
    inv_group: f32,
    inv_exe: f32,
}

impl JobScales {
    pub fn new(jobs: &[Job], max_host_cores: u32) -> Self {
        let inv = |x: f64| if x > 0.0 { (1.0 / x) as f32 } else { 0.0 };
        let max = |f: &dyn Fn(&Job) -> f64| jobs.iter().map(f).fold(0.0, f64::max);
        Self {
            inv_requested: inv(max(&|j| j.requested_runtime as f64)),
            inv_cores: inv(max_host_cores as f64),
            inv_mem: inv(max(&|j| j.mem_mb as f64)),
            inv_user: inv(max(&|j| j.user as f64)),
            inv_group: inv(max(&|j| j.group as f64)),
            inv_exe: inv(max(&|j| j.executable as f64)),
        }
    }
}

fn scaled(value: f64, inv: f32, unknown: bool) -> f32 {
    if unknown || inv == 0.0 {
        1.0
    } else {
        (value as f32 * inv).min(ALMOST_ONE)
    }
}

pub fn write_job_row(out: &mut [f32], job: &Job, now: u64, s: &JobScales, can_start: bool) {
    out[0] = ((now.saturating_sub(job.submit)) as f32 / MAX_WAIT_S).min(ALMOST_ONE);
    out[1] = scaled(job.requested_runtime as f64, s.inv_requested, false);
    out[2] = scaled(job.cores as f64, s.inv_cores, false);
    out[3] = scaled(job.mem_mb as f64, s.inv_mem, job.mem_mb == 0);
    out[4] = scaled(job.user as f64, s.inv_user, job.user < 0);
    out[5] = scaled(job.group as f64, s.inv_group, job.group < 0);
    out[6] = scaled(job.executable as f64, s.inv_exe, job.executable < 0);
    out[7] = if can_start { ALMOST_ONE } else { 1e-5 };
}
