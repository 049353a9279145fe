//! RLScheduler-compatible heuristic replay (Zhang et al., SC'20), reproducing the semantics of
//! its `HPCSimPickJobs.py` so simrs's numbers can be set beside the published tables:
//!
//! * identical nodes, whole-node allocation (`ceil(procs / procs_per_node)` nodes);
//! * the queue is sorted by the heuristic (stably, as Python's list.sort) before each decision;
//!   the chosen job is committed and blocks until it fits, while time advances to the next
//!   arrival or completion, whichever comes first (arrivals first on ties);
//! * shadow-only backfilling: the committed job's earliest start is computed once from running
//!   jobs' requested times; queued jobs (FCFS order) start now if they fit and
//!   `now + requested < shadow`;
//! * WFP3 and UNICEP see that code's wait, `scheduled_time - submit` with `scheduled_time`
//!   still -1;
//! * utilisation is `sum(run * procs) / ((t_last_start - t_first_submit) * max_procs)`.
//!
//! The orderings of the queue and running lists evolve exactly as in that code (stable sorts,
//! appends, removals), because ties between equal keys are broken by that history.

use crate::policy::{Priority, SortKey};

#[derive(Debug, Clone, Copy)]
pub struct CompatJob {
    pub submit: i64,
    pub run: i64,
    pub requested: i64,
    pub procs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompatMetric {
    BoundedSlowdown,
    Utilization,
}

struct Sim<'a> {
    jobs: &'a [CompatJob],
    keys: Vec<SortKey>,
    nodes_needed: Vec<i64>,
    scheduled: Vec<i64>,
    queue: Vec<usize>,
    running: Vec<usize>,
    free_nodes: i64,
    procs_per_node: f64,
    now: i64,
    next: usize,
    last: usize,
    bsld_sum: f64,
    work_sum: f64,
}

impl<'a> Sim<'a> {
    fn fits(&self, j: usize) -> bool {
        self.nodes_needed[j] <= self.free_nodes
    }

    fn end(&self, j: usize) -> i64 {
        self.scheduled[j] + self.jobs[j].run
    }

    fn start_job(&mut self, j: usize) {
        debug_assert_eq!(self.scheduled[j], -1, "job started twice");
        debug_assert!(self.fits(j));
        self.scheduled[j] = self.now;
        self.free_nodes -= self.nodes_needed[j];
        self.running.push(j);
        let job = self.jobs[j];
        let wait = (self.now - job.submit) as f64;
        self.bsld_sum += ((wait + job.run as f64) / (job.run.max(10) as f64)).max(1.0);
        self.work_sum += (job.run * job.procs) as f64;
        let pos = self.queue.iter().position(|&q| q == j).expect("started job was queued");
        self.queue.remove(pos);
    }

    /// One step of time: the next arrival if it comes no later than the next completion.
    fn advance_one_event(&mut self) {
        let mut running = std::mem::take(&mut self.running);
        running.sort_by_key(|&r| self.end(r));
        self.running = running;
        let first = *self.running.first().expect("waiting for resources with nothing running");
        let release = self.end(first);
        if self.next < self.last && self.jobs[self.next].submit <= release {
            self.now = self.now.max(self.jobs[self.next].submit);
            self.queue.push(self.next);
            self.next += 1;
        } else {
            self.now = self.now.max(release);
            self.free_nodes += self.nodes_needed[first];
            self.running.remove(0);
        }
    }

    fn wait_until_fits(&mut self, j: usize) {
        while !self.fits(j) {
            self.advance_one_event();
        }
    }

    fn shadow_backfill_until_fits(&mut self, j: usize) {
        let mut running = std::mem::take(&mut self.running);
        running.sort_by_key(|&r| self.scheduled[r] + self.jobs[r].requested);
        self.running = running;
        let mut shadow = self.now;
        let mut free_procs = self.free_nodes as f64 * self.procs_per_node;
        for &r in &self.running {
            free_procs += self.nodes_needed[r] as f64 * self.procs_per_node;
            shadow = self.scheduled[r] + self.jobs[r].requested;
            if free_procs >= self.jobs[j].procs as f64 {
                break;
            }
        }
        while !self.fits(j) {
            let mut queue = std::mem::take(&mut self.queue);
            queue.sort_by_key(|&q| self.jobs[q].submit);
            self.queue = queue;
            for q in self.queue.clone() {
                if self.now + self.jobs[q].requested < shadow && self.fits(q) {
                    self.start_job(q);
                }
            }
            self.advance_one_event();
        }
    }

    /// After a start: refill an empty queue with the next arrival. False when all are done.
    fn refill_queue(&mut self) -> bool {
        if !self.queue.is_empty() {
            return true;
        }
        if self.next >= self.last {
            return false;
        }
        loop {
            let release = if self.running.is_empty() {
                i64::MAX
            } else {
                let mut running = std::mem::take(&mut self.running);
                running.sort_by_key(|&r| self.end(r));
                self.running = running;
                self.end(self.running[0])
            };
            if self.jobs[self.next].submit <= release {
                self.now = self.now.max(self.jobs[self.next].submit);
                self.queue.push(self.next);
                self.next += 1;
                return true;
            }
            self.now = self.now.max(release);
            let first = self.running.remove(0);
            self.free_nodes += self.nodes_needed[first];
        }
    }
}

/// Replays jobs `start .. start + len` with a heuristic; returns the window's metric.
#[allow(clippy::too_many_arguments)]
pub fn replay_window(
    jobs: &[CompatJob],
    nodes: i64,
    max_procs: i64,
    start: usize,
    len: usize,
    policy: Priority,
    backfill: bool,
    metric: CompatMetric,
) -> f64 {
    assert!(start + len <= jobs.len(), "window beyond the trace");
    let procs_per_node = max_procs as f64 / nodes as f64;
    let keys = jobs.iter().map(|j| policy.key(j.submit, j.requested, j.procs, -1 - j.submit)).collect();
    let nodes_needed =
        jobs.iter().map(|j| (j.procs as f64 / procs_per_node).ceil() as i64).collect();
    let mut sim = Sim {
        jobs,
        keys,
        nodes_needed,
        scheduled: vec![-1; jobs.len()],
        queue: vec![start],
        running: Vec::new(),
        free_nodes: nodes,
        procs_per_node,
        now: jobs[start].submit,
        next: start + 1,
        last: start + len,
        bsld_sum: 0.0,
        work_sum: 0.0,
    };
    loop {
        let mut queue = std::mem::take(&mut sim.queue);
        queue.sort_by(|&a, &b| sim.keys[a].order(&sim.keys[b]));
        sim.queue = queue;
        let chosen = sim.queue[0];
        if !sim.fits(chosen) {
            if backfill {
                sim.shadow_backfill_until_fits(chosen);
            } else {
                sim.wait_until_fits(chosen);
            }
        }
        sim.start_job(chosen);
        if !sim.refill_queue() {
            break;
        }
    }
    match metric {
        CompatMetric::BoundedSlowdown => sim.bsld_sum / len as f64,
        CompatMetric::Utilization => {
            sim.work_sum / ((sim.now - jobs[start].submit) as f64 * max_procs as f64)
        }
    }
}

/// RLScheduler's evaluation windows on lublin_256: 0-based starts into the filtered jobs.
pub const RLSCHEDULER_WINDOWS: [usize; 10] = [1981, 2756, 4299, 8850, 3316, 2714, 5228, 7762, 4022, 7085];
pub const RLSCHEDULER_WINDOW_LEN: usize = 1024;
