//! Native throughput of the place-mode vector env (no Python): `cargo run --release --example bench_place`.
use simrs::envs::env::{Env, EnvConfig};
use simrs::envs::place_env::PlaceEnv;
use simrs::reward::RewardKind;
use simrs::envs::vec_env::VecEnv;
use simrs::workload::{WorkloadConfig, WorkloadSource};

fn main() {
    let cfg = EnvConfig { source: WorkloadSource::Synthetic(WorkloadConfig { num_hosts: 64, ..Default::default() }), reward: RewardKind::Wait };
    let n = 256;
    let envs: Vec<Box<dyn Env>> = (0..n).map(|_| Box::new(PlaceEnv::new(cfg.clone(), 0).unwrap()) as Box<dyn Env>).collect();
    let mut v = VecEnv::new(envs, 0).unwrap();
    let (d, a) = (v.obs_dim(), v.action_dim());
    let (mut obs, mut mask) = (vec![0f32; n * d], vec![0i8; n * a]);
    let (mut r, mut dn, mut f) = (vec![0f32; n], vec![0u8; n], vec![None; n]);
    v.observe(&mut obs, &mut mask);
    let mut acts = vec![0i64; n];
    let t = std::time::Instant::now();
    let iters: usize = std::env::var("ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);
    for _ in 0..iters {
        for (i, m) in mask.chunks(a).enumerate() { acts[i] = m.iter().position(|&x| x == 1).unwrap_or(0) as i64; }
        v.step(&acts, &mut obs, &mut mask, &mut r, &mut dn, &mut f).unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!("{:.0} steps/s", (iters * n) as f64 / s);
}
