//! The discrete-event core shared by every decision mode: a cluster, the episode's jobs, the
//! waiting queue (arrival order) and the event heap. Modes decide; this applies decisions and
//! moves time.

use crate::cluster::Cluster;
use crate::error::{SimError, SimResult};
use crate::event::{EventKind, EventQueue, Time};
use crate::job::Job;
use crate::metrics::{episode_metrics, EpisodeMetrics};

#[derive(Debug, Clone, Default)]
pub struct ClusterSim {
    pub cluster: Cluster,
    pub jobs: Vec<Job>,
    /// Waiting jobs, in arrival order.
    pub queue: Vec<usize>,
    /// Jobs in the order they started.
    pub start_order: Vec<usize>,
    /// Jobs running now (unordered).
    pub running_jobs: Vec<usize>,
    events: EventQueue,
    pub now: Time,
    pub running: usize,
    pub completed: usize,
}

impl ClusterSim {
    pub fn new(cluster: Cluster, jobs: Vec<Job>) -> Self {
        let mut sim = Self::default();
        sim.load(cluster, jobs);
        sim
    }

    /// Replaces the episode, reusing the allocations.
    pub fn load(&mut self, cluster: Cluster, mut jobs: Vec<Job>) {
        for (i, j) in jobs.iter_mut().enumerate() {
            j.id = i;
            j.reset();
        }
        self.cluster = cluster;
        self.events.clear();
        for j in &jobs {
            self.events.push(j.submit, EventKind::Arrival { job: j.id });
        }
        self.now = jobs.iter().map(|j| j.submit).min().unwrap_or(0);
        self.jobs = jobs;
        self.queue.clear();
        self.start_order.clear();
        self.running_jobs.clear();
        self.running = 0;
        self.completed = 0;
    }

    pub fn all_started(&self) -> bool {
        self.start_order.len() == self.jobs.len()
    }

    /// Applies every event at the next event time. Returns the job-seconds the queue waited
    /// during the jump, or None when no event is left.
    pub fn advance(&mut self) -> Option<f64> {
        let t = self.events.peek_time()?;
        let waited = self.queue.len() as f64 * (t - self.now) as f64;
        self.now = t;
        while self.events.peek_time() == Some(t) {
            let event = self.events.pop().expect("peeked");
            match event.kind {
                EventKind::Arrival { job } => self.queue.push(job),
                EventKind::Completion { job, host } => {
                    let j = &mut self.jobs[job];
                    debug_assert!(j.end.is_none(), "job {job} ended twice");
                    j.end = Some(t);
                    self.cluster.release(host, &self.jobs[job]);
                    let pos = self.running_jobs.iter().position(|&r| r == job).expect("running");
                    self.running_jobs.swap_remove(pos);
                    self.running -= 1;
                    self.completed += 1;
                }
            }
        }
        debug_assert!(self.cluster.within_capacity());
        Some(waited)
    }

    /// Starts the job at queue position `pos` on `host`, now.
    pub fn start_from_queue(&mut self, pos: usize, host: usize) -> SimResult<usize> {
        let job = *self.queue.get(pos).ok_or(SimError::InvalidAction {
            action: pos,
            reason: "no queued job at that position",
        })?;
        if host >= self.cluster.len() {
            return Err(SimError::InvalidAction { action: host, reason: "no such host" });
        }
        if !self.cluster.hosts[host].fits(&self.jobs[job]) {
            return Err(SimError::InvalidAction {
                action: host,
                reason: "the job does not fit on that host (check the action mask)",
            });
        }
        self.cluster.allocate(host, &self.jobs[job])?;
        self.queue.remove(pos);
        let j = &mut self.jobs[job];
        debug_assert!(j.start.is_none(), "job {job} started twice");
        j.start = Some(self.now);
        j.host = Some(host);
        self.events.push(self.now + j.runtime, EventKind::Completion { job, host });
        self.start_order.push(job);
        self.running_jobs.push(job);
        self.running += 1;
        Ok(job)
    }

    /// Lets every running job finish (after the last start) so makespan is known.
    pub fn drain(&mut self) {
        while self.advance().is_some() {}
        debug_assert!(
            !self.all_started() || self.jobs.iter().all(|j| j.end.is_some()),
            "every job ends"
        );
    }

    pub fn metrics(&self) -> EpisodeMetrics {
        episode_metrics(&self.jobs, &self.cluster)
    }

    /// Free cores summed over hosts (backfilling reasons about the pool).
    pub fn free_cores(&self) -> u64 {
        self.cluster.hosts.iter().map(|h| h.free_cores() as u64).sum()
    }

    /// Largest cores and memory any job of the episode asks for (observation scales).
    pub fn max_job_request(&self) -> (u32, u64) {
        let cores = self.jobs.iter().map(|j| j.cores).max().unwrap_or(1).max(1);
        let mem = self.jobs.iter().map(|j| j.mem_mb).max().unwrap_or(1).max(1);
        (cores, mem)
    }
}
