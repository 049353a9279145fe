//! Hosts and their capacity accounting. Allocation refuses to overfill a host; the refusal is an
//! error value so a scheduling bug surfaces instead of silently corrupting the state.

use crate::error::{SimError, SimResult};
use crate::job::Job;

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub cores: u32,
    pub mem_mb: u64,
    pub gpus: u32,
    pub used_cores: u32,
    pub used_mem_mb: u64,
    pub used_gpus: u32,
    /// 1 / cores and 1 / memory, precomputed so observations multiply instead of divide.
    pub inv_cores: f32,
    pub inv_mem: f32,
}

impl Host {
    pub fn new(cores: u32, mem_mb: u64) -> Self {
        Self::with_gpus(cores, mem_mb, 0)
    }

    pub fn with_gpus(cores: u32, mem_mb: u64, gpus: u32) -> Self {
        Self {
            cores,
            mem_mb,
            gpus,
            used_cores: 0,
            used_mem_mb: 0,
            used_gpus: 0,
            inv_cores: 1.0 / cores.max(1) as f32,
            inv_mem: 1.0 / mem_mb.max(1) as f32,
        }
    }

    pub fn free_cores(&self) -> u32 {
        self.cores - self.used_cores
    }

    pub fn free_mem_mb(&self) -> u64 {
        self.mem_mb - self.used_mem_mb
    }

    pub fn free_gpus(&self) -> u32 {
        self.gpus - self.used_gpus
    }

    pub fn fits(&self, job: &Job) -> bool {
        self.free_cores() >= job.cores
            && self.free_mem_mb() >= job.mem_mb
            && self.free_gpus() >= job.gpus
    }

    pub fn core_utilization(&self) -> f32 {
        self.used_cores as f32 * self.inv_cores
    }

    pub fn mem_utilization(&self) -> f32 {
        self.used_mem_mb as f32 * self.inv_mem
    }
}

#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub hosts: Vec<Host>,
    /// Largest host's cores and memory, as reciprocals: the observation's scale.
    pub inv_max_cores: f32,
    pub inv_max_mem: f32,
    /// Per host: cores / largest cores and memory / largest memory, computed once.
    pub rel_cores: Vec<f32>,
    pub rel_mem: Vec<f32>,
    pub total_cores: u64,
    /// Free resources per host as flat arrays, so masks are computed by a vectorisable loop.
    pub free_cores: Vec<u32>,
    /// Free memory in MB, saturated to u32 (4 PB) so the mask loop is all 32-bit lanes.
    pub free_mem: Vec<u32>,
    pub free_gpus: Vec<u32>,
    /// The hosts' observation rows (core util, mem util, rel cores, rel mem), kept current on
    /// every allocation and release so an observation is one copy.
    pub host_rows: Vec<f32>,
}

impl Cluster {
    pub fn new(hosts: Vec<Host>) -> Self {
        let max_cores = hosts.iter().map(|h| h.cores).max().unwrap_or(1).max(1) as f32;
        let max_mem = hosts.iter().map(|h| h.mem_mb).max().unwrap_or(1).max(1) as f32;
        let rel_cores = hosts.iter().map(|h| h.cores as f32 / max_cores).collect();
        let rel_mem = hosts.iter().map(|h| h.mem_mb as f32 / max_mem).collect();
        let total_cores = hosts.iter().map(|h| h.cores as u64).sum();
        let mut cluster = Self {
            free_cores: hosts.iter().map(|h| h.free_cores()).collect(),
            free_mem: hosts.iter().map(|h| sat32(h.free_mem_mb())).collect(),
            free_gpus: hosts.iter().map(|h| h.free_gpus()).collect(),
            host_rows: vec![0.0; hosts.len() * 4],
            hosts,
            inv_max_cores: 1.0 / max_cores,
            inv_max_mem: 1.0 / max_mem,
            rel_cores,
            rel_mem,
            total_cores,
        };
        for h in 0..cluster.hosts.len() {
            cluster.sync_host(h);
        }
        cluster
    }

    /// Refreshes the flat copies of host `h` after its usage changed.
    fn sync_host(&mut self, h: usize) {
        let host = &self.hosts[h];
        self.free_cores[h] = host.free_cores();
        self.free_mem[h] = sat32(host.free_mem_mb());
        self.free_gpus[h] = host.free_gpus();
        let row = &mut self.host_rows[h * 4..h * 4 + 4];
        row[0] = host.core_utilization();
        row[1] = host.mem_utilization();
        row[2] = self.rel_cores[h];
        row[3] = self.rel_mem[h];
    }

    /// Writes 1 for each host the job fits on now, else 0.
    pub fn fit_mask(&self, job: &Job, out: &mut [i8]) {
        let (c, m, g) = (job.cores, sat32(job.mem_mb), job.gpus);
        for (((o, &fc), &fm), &fg) in
            out.iter_mut().zip(&self.free_cores).zip(&self.free_mem).zip(&self.free_gpus)
        {
            *o = (fc >= c && fm >= m && fg >= g) as i8;
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn allocate(&mut self, host: usize, job: &Job) -> SimResult<()> {
        let h = self.hosts.get_mut(host).ok_or(SimError::CapacityViolation { host })?;
        if !h.fits(job) {
            return Err(SimError::CapacityViolation { host });
        }
        h.used_cores += job.cores;
        h.used_mem_mb += job.mem_mb;
        h.used_gpus += job.gpus;
        self.sync_host(host);
        Ok(())
    }

    pub fn release(&mut self, host: usize, job: &Job) {
        let h = &mut self.hosts[host];
        debug_assert!(h.used_cores >= job.cores && h.used_mem_mb >= job.mem_mb);
        h.used_cores -= job.cores;
        h.used_mem_mb -= job.mem_mb;
        h.used_gpus -= job.gpus;
        self.sync_host(host);
    }

    pub fn fits_somewhere(&self, job: &Job) -> bool {
        self.free_cores
            .iter()
            .zip(&self.free_mem)
            .zip(&self.free_gpus)
            .any(|((&c, &m), &g)| c >= job.cores && m >= sat32(job.mem_mb) && g >= job.gpus)
    }

    /// No host over capacity: the invariant checked in debug builds and by tests.
    pub fn within_capacity(&self) -> bool {
        self.hosts.iter().all(|h| {
            h.used_cores <= h.cores && h.used_mem_mb <= h.mem_mb && h.used_gpus <= h.gpus
        })
    }

    /// Variance of host core utilisation: 0 when load is perfectly even.
    pub fn load_imbalance(&self) -> f64 {
        let n = self.hosts.len().max(1) as f64;
        let utils: Vec<f64> = self.hosts.iter().map(|h| h.core_utilization() as f64).collect();
        let mean = utils.iter().sum::<f64>() / n;
        utils.iter().map(|u| (u - mean).powi(2)).sum::<f64>() / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_refuses_to_overfill() {
        let mut c = Cluster::new(vec![Host::new(4, 1000)]);
        let big = Job::new(0, 0, 10, 10, 3, 500);
        let wide = Job::new(1, 0, 10, 10, 2, 100);
        let fat = Job::new(2, 0, 10, 10, 1, 600);
        c.allocate(0, &big).unwrap();
        assert_eq!(c.allocate(0, &wide), Err(SimError::CapacityViolation { host: 0 }));
        assert_eq!(c.allocate(0, &fat), Err(SimError::CapacityViolation { host: 0 }));
        assert!(c.within_capacity());
        c.release(0, &big);
        assert_eq!(c.hosts[0].free_cores(), 4);
        assert_eq!(c.load_imbalance(), 0.0);
    }
}

/// Memory beyond u32::MAX MB (4 PB) is treated as u32::MAX: no host or job comes close.
fn sat32(x: u64) -> u32 {
    x.min(u32::MAX as u64) as u32
}

/// Answers "does this job fit on some host now?" in O(1) after an O(hosts + cores) build:
/// for each core count c, the most free memory on any host with at least c free cores.
#[derive(Debug, Clone, Default)]
pub struct FitIndex {
    best_mem_with_cores: Vec<u64>,
    any_gpus: bool,
}

impl FitIndex {
    pub fn build(cluster: &Cluster, out: &mut FitIndex) {
        let max_free = cluster.hosts.iter().map(|h| h.free_cores()).max().unwrap_or(0) as usize;
        out.best_mem_with_cores.clear();
        out.best_mem_with_cores.resize(max_free + 1, 0);
        for h in &cluster.hosts {
            let c = h.free_cores() as usize;
            let slot = &mut out.best_mem_with_cores[c];
            *slot = (*slot).max(h.free_mem_mb());
        }
        for c in (0..max_free).rev() {
            out.best_mem_with_cores[c] =
                out.best_mem_with_cores[c].max(out.best_mem_with_cores[c + 1]);
        }
        out.any_gpus = cluster.hosts.iter().any(|h| h.gpus > 0);
    }

    pub fn fits_somewhere(&self, cluster: &Cluster, job: &Job) -> bool {
        if job.gpus > 0 {
            return cluster.fits_somewhere(job); // rare: exact scan
        }
        self.best_mem_with_cores.get(job.cores as usize).is_some_and(|&m| m >= job.mem_mb)
    }
}
