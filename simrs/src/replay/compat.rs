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

use std::sync::Arc;

use crate::heuristics::policy::Priority;
use crate::swf::Trace;

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

/// A trace as that code sees it: jobs, identical nodes, and what each job needs of them.
#[derive(Debug, Clone)]
pub struct CompatWorkload {
    pub jobs: Vec<CompatJob>,
    pub nodes: i64,
    pub max_procs: i64,
    /// Per job: user, group and executable ids (-1 when unknown), for observations.
    pub ids: Vec<[i64; 3]>,
    nodes_needed: Vec<i64>,
    procs_per_node: f64,
}

impl CompatWorkload {
    pub fn new(jobs: Vec<CompatJob>, nodes: i64, max_procs: i64) -> Self {
        let procs_per_node = max_procs as f64 / nodes as f64;
        let nodes_needed =
            jobs.iter().map(|j| (j.procs as f64 / procs_per_node).ceil() as i64).collect();
        let ids = vec![[-1; 3]; jobs.len()];
        Self { jobs, nodes, max_procs, ids, nodes_needed, procs_per_node }
    }

    pub fn from_trace(trace: &Trace) -> Self {
        let jobs = trace
            .jobs
            .iter()
            .map(|j| CompatJob { submit: j.submit, run: j.run, requested: j.requested_time, procs: j.procs })
            .collect();
        let mut w = Self::new(jobs, trace.nodes(), trace.capacity());
        w.ids = trace.jobs.iter().map(|j| [j.user, j.group, j.executable]).collect();
        w
    }

    pub fn nodes_needed(&self, j: usize) -> i64 {
        self.nodes_needed[j]
    }
}

/// The replay state of one window `first .. last` of a workload. Job indices are the
/// workload's; `scheduled` is indexed from `first`.
#[derive(Debug, Clone)]
pub struct CompatSim {
    w: Arc<CompatWorkload>,
    scheduled: Vec<i64>,
    /// Queued jobs, in the order that code keeps them.
    pub queue: Vec<usize>,
    running: Vec<usize>,
    pub free_nodes: i64,
    pub now: i64,
    first: usize,
    next: usize,
    last: usize,
    /// Sums over started jobs: bounded slowdown, wait, and run * procs.
    pub bsld_sum: f64,
    pub wait_sum: f64,
    pub work_sum: f64,
    pub started: usize,
}

impl CompatSim {
    /// Jobs `first .. first + len` on an empty machine, the first job queued.
    pub fn new(w: Arc<CompatWorkload>, first: usize, len: usize) -> Self {
        assert!(len >= 1 && first + len <= w.jobs.len(), "window beyond the trace");
        let now = w.jobs[first].submit;
        let free_nodes = w.nodes;
        Self {
            w,
            scheduled: vec![-1; len],
            queue: vec![first],
            running: Vec::new(),
            free_nodes,
            now,
            first,
            next: first + 1,
            last: first + len,
            bsld_sum: 0.0,
            wait_sum: 0.0,
            work_sum: 0.0,
            started: 0,
        }
    }

    pub fn workload(&self) -> &CompatWorkload {
        &self.w
    }

    pub fn len(&self) -> usize {
        self.last - self.first
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn first_submit(&self) -> i64 {
        self.w.jobs[self.first].submit
    }

    pub fn fits(&self, j: usize) -> bool {
        self.w.nodes_needed[j] <= self.free_nodes
    }

    fn scheduled(&self, j: usize) -> i64 {
        self.scheduled[j - self.first]
    }

    fn end(&self, j: usize) -> i64 {
        self.scheduled(j) + self.w.jobs[j].run
    }

    fn start_job(&mut self, j: usize) {
        debug_assert_eq!(self.scheduled(j), -1, "job started twice");
        debug_assert!(self.fits(j));
        self.scheduled[j - self.first] = self.now;
        self.free_nodes -= self.w.nodes_needed[j];
        self.running.push(j);
        let job = self.w.jobs[j];
        let wait = (self.now - job.submit) as f64;
        self.bsld_sum += ((wait + job.run as f64) / (job.run.max(10) as f64)).max(1.0);
        self.wait_sum += wait;
        self.work_sum += (job.run * job.procs) as f64;
        self.started += 1;
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
        if self.next < self.last && self.w.jobs[self.next].submit <= release {
            self.now = self.now.max(self.w.jobs[self.next].submit);
            self.queue.push(self.next);
            self.next += 1;
        } else {
            self.now = self.now.max(release);
            self.free_nodes += self.w.nodes_needed[first];
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
        running.sort_by_key(|&r| self.scheduled(r) + self.w.jobs[r].requested);
        self.running = running;
        let mut shadow = self.now;
        let mut free_procs = self.free_nodes as f64 * self.w.procs_per_node;
        for &r in &self.running {
            free_procs += self.w.nodes_needed[r] as f64 * self.w.procs_per_node;
            shadow = self.scheduled(r) + self.w.jobs[r].requested;
            if free_procs >= self.w.jobs[j].procs as f64 {
                break;
            }
        }
        while !self.fits(j) {
            let mut queue = std::mem::take(&mut self.queue);
            queue.sort_by_key(|&q| self.w.jobs[q].submit);
            self.queue = queue;
            for q in self.queue.clone() {
                if self.now + self.w.jobs[q].requested < shadow && self.fits(q) {
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
            if self.w.jobs[self.next].submit <= release {
                self.now = self.now.max(self.w.jobs[self.next].submit);
                self.queue.push(self.next);
                self.next += 1;
                return true;
            }
            self.now = self.now.max(release);
            let first = self.running.remove(0);
            self.free_nodes += self.w.nodes_needed[first];
        }
    }

    /// Commits queued job `j`: waits (backfilling if asked) until it fits, starts it, and
    /// moves on to the next decision. False when every job of the window has started.
    pub fn commit(&mut self, j: usize, backfill: bool) -> bool {
        if !self.fits(j) {
            if backfill {
                self.shadow_backfill_until_fits(j);
            } else {
                self.wait_until_fits(j);
            }
        }
        self.start_job(j);
        self.refill_queue()
    }

    pub fn mean_bounded_slowdown(&self) -> f64 {
        self.bsld_sum / self.len() as f64
    }

    /// `sum(run * procs) / ((now - first submit) * max_procs)`, `now` being the last start.
    pub fn utilization(&self) -> f64 {
        self.work_sum / ((self.now - self.first_submit()) as f64 * self.w.max_procs as f64)
    }
}

/// A heuristic's key for job `j` as that code computes it (the wait is `-1 - submit`).
pub fn compat_key(w: &CompatWorkload, policy: Priority, j: usize) -> crate::heuristics::policy::SortKey {
    let job = w.jobs[j];
    policy.key(job.submit, job.requested, job.procs, -1 - job.submit, job.run)
}

/// Replays jobs `start .. start + len` with a heuristic; returns the window's metric.
pub fn replay_window(
    w: &Arc<CompatWorkload>,
    start: usize,
    len: usize,
    policy: Priority,
    backfill: bool,
    metric: CompatMetric,
) -> f64 {
    assert!(start + len <= w.jobs.len(), "window beyond the trace");
    let keys: Vec<_> = (start..start + len).map(|j| compat_key(w, policy, j)).collect();
    let mut sim = CompatSim::new(Arc::clone(w), start, len);
    loop {
        let mut queue = std::mem::take(&mut sim.queue);
        queue.sort_by(|&a, &b| keys[a - start].order(&keys[b - start]));
        sim.queue = queue;
        let chosen = sim.queue[0];
        if !sim.commit(chosen, backfill) {
            break;
        }
    }
    match metric {
        CompatMetric::BoundedSlowdown => sim.mean_bounded_slowdown(),
        CompatMetric::Utilization => sim.utilization(),
    }
}

/// RLScheduler's evaluation windows on lublin_256: 0-based starts into the filtered jobs.
pub const RLSCHEDULER_WINDOWS: [usize; 10] = [1981, 2756, 4299, 8850, 3316, 2714, 5228, 7762, 4022, 7085];
pub const RLSCHEDULER_WINDOW_LEN: usize = 1024;
