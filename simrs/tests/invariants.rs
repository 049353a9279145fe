//! Property tests: whatever the workload and whatever valid actions are taken, no host goes
//! over capacity, no job starts twice, and every job ends after running exactly its run time.

use proptest::prelude::*;
use simrs::heuristics::backfill::Backfill;
use simrs::cluster::{Cluster, Host};
use simrs::envs::env::{Env, EnvConfig};
use simrs::envs::hier_env::HierEnv;
use simrs::job::Job;
use simrs::envs::pick_env::PickEnv;
use simrs::envs::place_env::PlaceEnv;
use simrs::heuristics::placement::Placement;
use simrs::heuristics::policy::Priority;
use simrs::replay::{replay, ReplayConfig};
use simrs::reward::RewardKind;
use simrs::sim::ClusterSim;
use simrs::workload::{WorkloadConfig, WorkloadSource};

fn config(hosts: usize, jobs: usize, burst: usize, gap: f64) -> EnvConfig {
    EnvConfig {
        source: WorkloadSource::Synthetic(WorkloadConfig {
            num_hosts: hosts,
            episode_length: jobs,
            max_jobs_per_step: burst,
            mean_interarrival_s: gap,
            ..Default::default()
        }),
        reward: RewardKind::BsldDense,
    }
}

fn check_finished(sim: &ClusterSim) {
    assert!(sim.cluster.within_capacity());
    assert_eq!(sim.start_order.len(), sim.jobs.len(), "every job started once");
    let mut seen = vec![false; sim.jobs.len()];
    for &j in &sim.start_order {
        assert!(!seen[j], "job {j} started twice");
        seen[j] = true;
    }
    for j in &sim.jobs {
        let (start, end) = (j.start.unwrap(), j.end.expect("every job ends"));
        assert!(start >= j.submit);
        assert_eq!(end, start + j.runtime);
    }
    assert!(sim.cluster.hosts.iter().all(|h| h.used_cores == 0 && h.used_mem_mb == 0));
}

/// Picks the `choice`-th valid action (mod the number of valid ones) from the mask.
fn masked_action(env: &dyn Env, choice: usize) -> usize {
    let mut mask = vec![0i8; env.action_dim()];
    env.action_mask(&mut mask);
    let valid: Vec<usize> = mask.iter().enumerate().filter(|(_, &m)| m == 1).map(|(i, _)| i).collect();
    assert!(!valid.is_empty(), "a live episode always offers an action");
    valid[choice % valid.len()]
}

fn play(env: &mut dyn Env, choices: &[usize]) {
    let mut k = 0;
    while !env.is_done() {
        let a = masked_action(env, choices[k % choices.len()]);
        env.step(a).unwrap();
        assert!(env.sim().unwrap().cluster.within_capacity());
        k += 1;
    }
    check_finished(env.sim().unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn place_mode_keeps_invariants(seed in 0u64..10_000, hosts in 1usize..6, jobs in 1usize..60,
                                   burst in 1usize..12, gap in 1.0f64..120.0,
                                   choices in prop::collection::vec(0usize..64, 1..32)) {
        let mut env = PlaceEnv::new(config(hosts, jobs, burst, gap), seed).unwrap();
        play(&mut env, &choices);
    }

    #[test]
    fn pick_mode_keeps_invariants(seed in 0u64..10_000, hosts in 1usize..6, jobs in 1usize..60,
                                  window in 1usize..16, easy in any::<bool>(),
                                  choices in prop::collection::vec(0usize..64, 1..32)) {
        let bf = if easy { Backfill::Easy } else { Backfill::None };
        let mut env = PickEnv::new(config(hosts, jobs, 8, 30.0), window, bf, seed).unwrap();
        play(&mut env, &choices);
    }

    #[test]
    fn hierarchical_mode_keeps_invariants(seed in 0u64..10_000, hosts in 1usize..6,
                                          jobs in 1usize..60,
                                          choices in prop::collection::vec(0usize..64, 1..32)) {
        let mut env = HierEnv::new(config(hosts, jobs, 8, 30.0), seed).unwrap();
        play(&mut env, &choices);
    }

    #[test]
    fn hierarchical_heuristic_pairs_act_within_the_masks(seed in 0u64..10_000, hosts in 1usize..6,
                                                         jobs in 1usize..60, rule in 0usize..7,
                                                         placement in 0usize..6) {
        let priority = Priority::ALL.get(rule).copied().unwrap_or(Priority::Clairvoyant);
        let place = [Placement::FirstFit, Placement::BestFit, Placement::BestFitMem,
                     Placement::WorstFit, Placement::Random, Placement::Tetris][placement];
        let mut env = HierEnv::new(config(hosts, jobs, 8, 30.0), seed).unwrap();
        let mut mask = vec![0i8; env.action_dim()];
        while !env.is_done() {
            env.action_mask(&mut mask);
            let a = env.heuristic_action(priority, place).expect("a live episode has one");
            prop_assert_eq!(mask[a], 1, "the pair chose a masked action");
            if priority == Priority::Fcfs && place == Placement::FirstFit {
                // FCFS among fitting jobs then first-fit: the first allowed action.
                prop_assert_eq!(a, mask.iter().position(|&m| m == 1).unwrap());
            }
            env.step(a).unwrap();
        }
        prop_assert_eq!(env.heuristic_action(priority, place), None);
        check_finished(env.sim().unwrap());
    }

    #[test]
    fn replay_keeps_invariants(sizes in prop::collection::vec((0u64..500, 1u64..400, 1u64..3, 1u32..5), 1..60),
                               policy in 0usize..7, backfill in 0usize..3, placement in 0usize..6) {
        let hosts = vec![Host::new(4, 1 << 20), Host::new(6, 1 << 20), Host::new(5, 1 << 20)];
        let mut submit = 0;
        let jobs: Vec<Job> = sizes.iter().enumerate().map(|(i, &(gap, run, over, cores))| {
            submit += gap;
            Job::new(i, submit, run, run * over, cores, 0)
        }).collect();
        let mut sim = ClusterSim::new(Cluster::new(hosts), jobs);
        let cfg = ReplayConfig {
            priority: Priority::ALL.get(policy).copied().unwrap_or(Priority::Clairvoyant),
            backfill: [Backfill::None, Backfill::Shadow, Backfill::Easy][backfill],
            placement: [Placement::FirstFit, Placement::BestFit, Placement::BestFitMem,
                        Placement::WorstFit, Placement::Random, Placement::Tetris][placement],
        };
        replay(&mut sim, cfg);
        check_finished(&sim);
    }
}
