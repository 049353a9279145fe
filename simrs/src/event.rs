//! The event queue: a min-heap keyed by (integer time, insertion order), so events at the same
//! second pop in the order they were scheduled and no float comparison is ever needed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Simulation time in whole seconds.
pub type Time = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Job `job` enters the queue.
    Arrival { job: usize },
    /// Job `job` finishes and frees its host.
    Completion { job: usize, host: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub time: Time,
    pub seq: u64,
    pub kind: EventKind,
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed so that BinaryHeap (a max-heap) pops the earliest (time, seq) first.
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default, Clone)]
pub struct EventQueue {
    heap: BinaryHeap<Event>,
    next_seq: u64,
}

impl EventQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.heap.clear();
        self.next_seq = 0;
    }

    pub fn push(&mut self, time: Time, kind: EventKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Event { time, seq, kind });
    }

    pub fn pop(&mut self) -> Option<Event> {
        self.heap.pop()
    }

    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|e| e.time)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = EventQueue::new();
        q.push(10, EventKind::Arrival { job: 0 });
        q.push(5, EventKind::Arrival { job: 1 });
        q.push(10, EventKind::Arrival { job: 2 });
        q.push(5, EventKind::Completion { job: 3, host: 0 });
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|e| (e.time, e.kind)).collect();
        assert_eq!(
            order,
            vec![
                (5, EventKind::Arrival { job: 1 }),
                (5, EventKind::Completion { job: 3, host: 0 }),
                (10, EventKind::Arrival { job: 0 }),
                (10, EventKind::Arrival { job: 2 }),
            ]
        );
    }
}
