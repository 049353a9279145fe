//! Hosts and their capacity accounting. Allocation refuses to overfill a host; the refusal is an
//! error value so a scheduling bug surfaces instead of silently corrupting the state.

use crate::error::{SimError, SimResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub cores: u32,
    pub mem_mb: u64,
    pub used_cores: u32,
    pub used_mem_mb: u64,
}

impl Host {
    pub fn new(cores: u32, mem_mb: u64) -> Self {
        Self { cores, mem_mb, used_cores: 0, used_mem_mb: 0 }
    }

    pub fn free_cores(&self) -> u32 {
        self.cores - self.used_cores
    }

    pub fn free_mem_mb(&self) -> u64 {
        self.mem_mb - self.used_mem_mb
    }

    pub fn fits(&self, cores: u32, mem_mb: u64) -> bool {
        self.free_cores() >= cores && self.free_mem_mb() >= mem_mb
    }
}

#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub hosts: Vec<Host>,
}

impl Cluster {
    pub fn new(hosts: Vec<Host>) -> Self {
        Self { hosts }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn max_cores(&self) -> u32 {
        self.hosts.iter().map(|h| h.cores).max().unwrap_or(1)
    }

    pub fn max_mem_mb(&self) -> u64 {
        self.hosts.iter().map(|h| h.mem_mb).max().unwrap_or(1)
    }

    pub fn allocate(&mut self, host: usize, cores: u32, mem_mb: u64) -> SimResult<()> {
        let h = self.hosts.get_mut(host).ok_or(SimError::CapacityViolation { host })?;
        if !h.fits(cores, mem_mb) {
            return Err(SimError::CapacityViolation { host });
        }
        h.used_cores += cores;
        h.used_mem_mb += mem_mb;
        Ok(())
    }

    pub fn release(&mut self, host: usize, cores: u32, mem_mb: u64) {
        let h = &mut self.hosts[host];
        debug_assert!(h.used_cores >= cores && h.used_mem_mb >= mem_mb, "release below zero");
        h.used_cores -= cores;
        h.used_mem_mb -= mem_mb;
    }

    pub fn reset_usage(&mut self) {
        for h in &mut self.hosts {
            h.used_cores = 0;
            h.used_mem_mb = 0;
        }
    }

    /// No host over capacity: the invariant checked in debug builds and by tests.
    pub fn within_capacity(&self) -> bool {
        self.hosts.iter().all(|h| h.used_cores <= h.cores && h.used_mem_mb <= h.mem_mb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_refuses_to_overfill() {
        let mut c = Cluster::new(vec![Host::new(4, 1000)]);
        c.allocate(0, 3, 500).unwrap();
        assert_eq!(c.allocate(0, 2, 100), Err(SimError::CapacityViolation { host: 0 }));
        assert_eq!(c.allocate(0, 1, 600), Err(SimError::CapacityViolation { host: 0 }));
        c.allocate(0, 1, 500).unwrap();
        assert!(c.within_capacity());
        c.release(0, 3, 500);
        assert_eq!(c.hosts[0].free_cores(), 3);
    }
}
