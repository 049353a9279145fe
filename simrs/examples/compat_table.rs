//! Prints the RLScheduler-compatible heuristic table for an SWF trace.
//! `cargo run --release --example compat_table -- ../../shared/traces/lublin_256.swf`
use simrs::heuristics::policy::Priority;
use std::sync::Arc;

use simrs::replay::compat::{replay_window, CompatMetric, CompatWorkload, RLSCHEDULER_WINDOWS, RLSCHEDULER_WINDOW_LEN};

fn main() {
    let path = std::env::args().nth(1).expect("usage: compat_table TRACE");
    let trace = simrs::swf::load(std::path::Path::new(&path), false).unwrap_or_else(|e| panic!("{e}"));
    let workload = Arc::new(CompatWorkload::from_trace(&trace));
    for metric in [CompatMetric::BoundedSlowdown, CompatMetric::Utilization] {
        for backfill in [false, true] {
            let row: Vec<String> = [Priority::Fcfs, Priority::Wfp3, Priority::Unicep, Priority::Sjf, Priority::F1].iter().map(|&p| {
                let vals: Vec<f64> = RLSCHEDULER_WINDOWS.iter().map(|&s| replay_window(&workload, s, RLSCHEDULER_WINDOW_LEN, p, backfill, metric)).collect();
                format!("{}={:.3}", p.name(), vals.iter().sum::<f64>() / vals.len() as f64)
            }).collect();
            println!("{metric:?} backfill={backfill}: {}", row.join(" "));
        }
    }
}
