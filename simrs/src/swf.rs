//! Standard Workload Format (SWF) loader.
//!
//! Reading rules (the Parallel Workloads Archive's usual ones, and RLScheduler's): processors =
//! max(allocated, requested); requested time = field 9, or the run time where it is -1; jobs
//! whose run time or processors are not positive are dropped (and counted); capacity comes
//! from the `MaxProcs` header, else `MaxNodes`. A malformed line is an error naming the file
//! and line, unless the caller asks to skip such lines, in which case they are counted too.

use std::fmt;
use std::fs;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwfJob {
    pub id: i64,
    pub submit: i64,
    pub wait: i64,
    pub run: i64,
    pub procs: i64,
    pub requested_time: i64,
    /// Requested memory, KB per processor (-1 when unknown).
    pub requested_memory_kb: i64,
    pub status: i64,
    pub user: i64,
    pub group: i64,
    pub executable: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropSummary {
    pub malformed: usize,
    pub non_positive_runtime: usize,
    pub non_positive_procs: usize,
}

impl DropSummary {
    pub fn total(&self) -> usize {
        self.malformed + self.non_positive_runtime + self.non_positive_procs
    }
}

#[derive(Debug, Clone)]
pub struct Trace {
    pub jobs: Vec<SwfJob>,
    pub max_nodes: Option<i64>,
    pub max_procs: Option<i64>,
    pub dropped: DropSummary,
}

impl Trace {
    /// Processors of the machine: `MaxProcs`, else `MaxNodes`, else the widest job.
    pub fn capacity(&self) -> i64 {
        self.max_procs
            .or(self.max_nodes)
            .unwrap_or_else(|| self.jobs.iter().map(|j| j.procs).max().unwrap_or(1))
    }

    /// Nodes, for node-granular allocation: `MaxNodes`, else the capacity.
    pub fn nodes(&self) -> i64 {
        self.max_nodes.unwrap_or_else(|| self.capacity())
    }

    /// Compresses inter-arrival times by `factor` (> 1 raises the offered load).
    pub fn scale_load(&mut self, factor: f64) -> Result<(), SwfError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(SwfError::InvalidScale(factor));
        }
        let Some(first) = self.jobs.iter().map(|j| j.submit).min() else { return Ok(()) };
        for j in &mut self.jobs {
            j.submit = first + ((j.submit - first) as f64 / factor).round() as i64;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SwfError {
    Io { path: String, message: String },
    Malformed { path: String, line: usize, message: String },
    InvalidScale(f64),
}

impl fmt::Display for SwfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwfError::Io { path, message } => write!(f, "{path}: {message}"),
            SwfError::Malformed { path, line, message } => write!(f, "{path}:{line}: {message}"),
            SwfError::InvalidScale(x) => write!(f, "load scale factor must be > 0, got {x}"),
        }
    }
}

impl std::error::Error for SwfError {}

fn header_value(line: &str, key: &str) -> Option<i64> {
    let rest = line.trim_start_matches(';').trim_start();
    let value = rest.strip_prefix(key)?.trim_start().strip_prefix(':')?;
    value.trim().parse().ok()
}

fn parse_line(line: &str) -> Result<SwfJob, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 18 {
        return Err(format!("expected 18 fields, found {}", fields.len()));
    }
    let int = |i: usize| -> Result<i64, String> {
        let raw = fields[i];
        raw.parse::<i64>()
            .or_else(|_| raw.parse::<f64>().map(|x| x.round() as i64).map_err(|_| ()))
            .map_err(|_| format!("field {} is not a number: {raw:?}", i + 1))
    };
    let run = int(3)?;
    let procs = int(4)?.max(int(7)?);
    let requested = int(8)?;
    Ok(SwfJob {
        id: int(0)?,
        submit: int(1)?,
        wait: int(2)?,
        run,
        procs,
        requested_time: if requested == -1 { run } else { requested },
        requested_memory_kb: int(9)?,
        status: int(10)?,
        user: int(11)?,
        group: int(12)?,
        executable: int(13)?,
    })
}

/// Parses SWF text. `name` is used in error messages.
pub fn parse(text: &str, name: &str, skip_malformed: bool) -> Result<Trace, SwfError> {
    let mut trace =
        Trace { jobs: Vec::new(), max_nodes: None, max_procs: None, dropped: DropSummary::default() };
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with(';') {
            if let Some(v) = header_value(line, "MaxNodes") {
                trace.max_nodes = Some(v);
            }
            if let Some(v) = header_value(line, "MaxProcs") {
                trace.max_procs = Some(v);
            }
            continue;
        }
        match parse_line(line) {
            Ok(job) if job.run <= 0 => trace.dropped.non_positive_runtime += 1,
            Ok(job) if job.procs <= 0 => trace.dropped.non_positive_procs += 1,
            Ok(job) => trace.jobs.push(job),
            Err(_) if skip_malformed => trace.dropped.malformed += 1,
            Err(message) => {
                return Err(SwfError::Malformed { path: name.to_string(), line: index + 1, message })
            }
        }
    }
    trace.jobs.sort_by_key(|j| j.id);
    Ok(trace)
}

pub fn load(path: &Path, skip_malformed: bool) -> Result<Trace, SwfError> {
    let name = path.display().to_string();
    let text = fs::read_to_string(path)
        .map_err(|e| SwfError::Io { path: name.clone(), message: e.to_string() })?;
    parse(&text, &name, skip_malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "; MaxNodes: 8\n; MaxProcs: 16\n\
        2 10 -1 50 4 -1 -1 2 -1 -1 1 3 1 1 0 -1 -1 -1\n\
        1 0 -1 100 2 -1 -1 4 200 -1 1 1 1 1 0 -1 -1 -1\n\
        3 20 -1 0 4 -1 -1 4 -1 -1 5 1 1 1 0 -1 -1 -1\n\
        4 30 -1 10 -1 -1 -1 -1 -1 -1 1 1 1 1 0 -1 -1 -1\n";

    #[test]
    fn applies_the_reading_rules() {
        let t = parse(SAMPLE, "s.swf", false).unwrap();
        assert_eq!(t.capacity(), 16);
        assert_eq!(t.nodes(), 8);
        assert_eq!(t.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(t.jobs[0].procs, 4); // max(allocated 2, requested 4)
        assert_eq!(t.jobs[0].requested_time, 200);
        assert_eq!(t.jobs[1].requested_time, 50); // -1 falls back to the run time
        assert_eq!(t.dropped, DropSummary { malformed: 0, non_positive_runtime: 1, non_positive_procs: 1 });
    }

    #[test]
    fn malformed_lines_name_file_and_line_or_are_counted() {
        let bad = format!("{SAMPLE}5 40 -1 x 1\n");
        let err = parse(&bad, "b.swf", false).unwrap_err();
        assert_eq!(err.to_string(), "b.swf:7: expected 18 fields, found 5");
        let bad2 = format!("{SAMPLE}5 40 -1 x 1 -1 -1 1 -1 -1 1 1 1 1 0 -1 -1 -1\n");
        assert!(parse(&bad2, "b.swf", false).unwrap_err().to_string().contains("field 4"));
        let skipped = parse(&bad, "b.swf", true).unwrap();
        assert_eq!(skipped.dropped.malformed, 1);
        assert_eq!(skipped.jobs.len(), 2);
    }

    #[test]
    fn load_scaling_compresses_gaps() {
        let mut t = parse(SAMPLE, "s.swf", false).unwrap();
        t.scale_load(2.0).unwrap();
        assert_eq!(t.jobs.iter().map(|j| j.submit).collect::<Vec<_>>(), vec![0, 5]);
        assert!(t.scale_load(0.0).is_err());
    }
}
