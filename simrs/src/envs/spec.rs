//! Choosing and configuring an environment, in the core: the mode, the workload (a synthetic
//! generator's options or a trace), the reward, the pick window, backfilling and the replay
//! protocol. Every rule here answers with a `SimError`, so the binding layer only converts
//! Python values into [`OptionValue`]s and maps errors to exceptions.

use std::sync::Arc;

use crate::envs::compat_pick_env::CompatPickEnv;
use crate::envs::env::{Env, EnvConfig};
use crate::envs::hier_env::HierEnv;
use crate::envs::pick_env::PickEnv;
use crate::envs::place_env::PlaceEnv;
use crate::error::{SimError, SimResult};
use crate::heuristics::backfill::Backfill;
use crate::heuristics::versus::{Rule, Versus};
use crate::replay::compat::CompatWorkload;
use crate::reward::RewardKind;
use crate::swf::Trace;
use crate::workload::{TraceWorkload, WorkloadConfig, WorkloadSource};

/// One option's value as the caller gave it, before the core checks its type and range.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Int(i64),
    Float(f64),
    Pair(Box<OptionValue>, Box<OptionValue>),
    /// Anything else, by its type's name (a string, a boolean, an integer past 64 bits).
    Other(String),
}

fn invalid(message: String) -> SimError {
    SimError::InvalidConfig(message)
}

impl OptionValue {
    fn whole<T: TryFrom<i64>>(&self, key: &str, what: &str) -> SimResult<T> {
        match self {
            OptionValue::Int(n) => T::try_from(*n).map_err(|_| invalid(format!("{key} must be {what}"))),
            _ => Err(invalid(format!("{key} must be {what}"))),
        }
    }

    fn number(&self, key: &str) -> SimResult<f64> {
        match self {
            OptionValue::Int(n) => Ok(*n as f64),
            OptionValue::Float(x) => Ok(*x),
            _ => Err(invalid(format!("{key} must be a number"))),
        }
    }

    fn pair<T: TryFrom<i64>>(&self, key: &str) -> SimResult<(T, T)> {
        let what = "a pair (low, high) of whole numbers";
        match self {
            OptionValue::Pair(a, b) => Ok((a.whole(key, what)?, b.whole(key, what)?)),
            _ => Err(invalid(format!("{key} must be a pair (low, high)"))),
        }
    }
}

impl WorkloadConfig {
    /// The generator's options, each named; an unknown one is an error, not ignored. The
    /// result is validated as a whole (ranges, low <= high).
    pub fn from_options(options: &[(String, OptionValue)]) -> SimResult<Self> {
        let mut cfg = WorkloadConfig::default();
        let positive = "a positive integer";
        for (key, v) in options {
            match key.as_str() {
                "num_hosts" => cfg.num_hosts = v.whole(key, positive)?,
                "episode_length" => cfg.episode_length = v.whole(key, positive)?,
                "max_jobs_per_step" => cfg.max_jobs_per_step = v.whole(key, positive)?,
                "host_cores" => cfg.host_cores = v.pair(key)?,
                "host_mem_mb" => cfg.host_mem_mb = v.pair(key)?,
                "job_cores" => cfg.job_cores = v.pair(key)?,
                "job_mem_mb" => cfg.job_mem_mb = v.pair(key)?,
                "mean_interarrival_s" => cfg.mean_interarrival_s = v.number(key)?,
                "burst_prob" => cfg.burst_prob = v.number(key)?,
                "runtime_median_s" => cfg.runtime_median_s = v.number(key)?,
                "runtime_sigma" => cfg.runtime_sigma = v.number(key)?,
                other => return Err(invalid(format!("unknown workload option {other:?}"))),
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The decision mode: which choice the agent makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Place,
    Pick,
    Hierarchical,
}

impl Mode {
    pub fn parse(name: &str) -> SimResult<Self> {
        Ok(match name {
            "place" => Mode::Place,
            "pick" => Mode::Pick,
            "hierarchical" => Mode::Hierarchical,
            other => return Err(invalid(format!("unknown mode {other:?}; choose place, pick or hierarchical"))),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Place => "place",
            Mode::Pick => "pick",
            Mode::Hierarchical => "hierarchical",
        }
    }
}

/// The RLScheduler-compatible pick replay: its workload and episode shape.
#[derive(Debug, Clone)]
pub struct CompatSpec {
    pub workload: Arc<CompatWorkload>,
    pub episode_length: usize,
}

/// Everything needed to build environments of one kind, checked once.
#[derive(Debug, Clone)]
pub struct EnvSpec {
    pub mode: Mode,
    pub config: EnvConfig,
    pub window: usize,
    pub backfill: Backfill,
    pub compat: Option<CompatSpec>,
}

impl EnvSpec {
    /// A workload comes from `options` (the generator) or from `trace`, never both; the
    /// `rlscheduler` protocol replays a trace in pick mode with backfill none or shadow.
    #[allow(clippy::too_many_arguments)]
    pub fn new(mode: &str, options: Option<&[(String, OptionValue)]>, trace: Option<&Arc<Trace>>,
               episode_length: usize, reward: &str, window: usize, backfill: &str,
               protocol: &str) -> SimResult<Self> {
        let mode = Mode::parse(mode)?;
        let compat = match protocol {
            "simrs" => None,
            "rlscheduler" => {
                let Some(t) = trace else {
                    return Err(invalid("the rlscheduler protocol replays a trace; pass trace=".into()));
                };
                if mode != Mode::Pick {
                    return Err(invalid("the rlscheduler protocol is a pick-mode protocol".into()));
                }
                if !matches!(backfill, "none" | "shadow") {
                    return Err(invalid("the rlscheduler protocol has backfill none or shadow".into()));
                }
                Some(CompatSpec { workload: Arc::new(CompatWorkload::from_trace(t)), episode_length })
            }
            other => return Err(invalid(format!("unknown protocol {other:?}; choose simrs or rlscheduler"))),
        };
        let source = match trace {
            Some(t) => {
                if options.is_some() {
                    return Err(invalid("give a workload config or a trace, not both".into()));
                }
                WorkloadSource::Trace(Arc::new(TraceWorkload::from_trace(t, episode_length)?))
            }
            None => WorkloadSource::Synthetic(WorkloadConfig::from_options(options.unwrap_or(&[]))?),
        };
        Ok(EnvSpec {
            mode,
            config: EnvConfig { source, reward: RewardKind::parse(reward)? },
            window,
            backfill: Backfill::parse(backfill)?,
            compat,
        })
    }
}

/// One environment of any mode.
pub enum AnyEnv {
    Place(PlaceEnv),
    Pick(PickEnv),
    Hier(HierEnv),
    Compat(CompatPickEnv),
}

impl AnyEnv {
    pub fn build(spec: &EnvSpec, seed: u64) -> SimResult<Self> {
        let c = spec.config.clone();
        if let Some(cs) = &spec.compat {
            let backfill = spec.backfill != Backfill::None;
            return Ok(AnyEnv::Compat(CompatPickEnv::new(
                Arc::clone(&cs.workload), cs.episode_length, spec.window, backfill, c.reward, seed,
            )?));
        }
        Ok(match spec.mode {
            Mode::Place => AnyEnv::Place(PlaceEnv::new(c, seed)?),
            Mode::Pick => AnyEnv::Pick(PickEnv::new(c, spec.window, spec.backfill, seed)?),
            Mode::Hierarchical => AnyEnv::Hier(HierEnv::new(c, seed)?),
        })
    }

    /// Boxed for a VecEnv; with `versus`, every episode's return is scored against that
    /// heuristic's on the same episode (see heuristics/versus.rs).
    pub fn boxed_versus(self, versus: Option<Rule>) -> SimResult<Box<dyn Env>> {
        let Some(rule) = versus else { return Ok(self.boxed()) };
        Ok(match self {
            AnyEnv::Place(e) => Box::new(Versus::new(e, rule)?),
            AnyEnv::Pick(e) => Box::new(Versus::new(e, rule)?),
            AnyEnv::Compat(e) => Box::new(Versus::new(e, rule)?),
            AnyEnv::Hier(_) => {
                return Err(invalid("hierarchical mode has no single-step heuristic to score against".into()))
            }
        })
    }

    pub fn boxed(self) -> Box<dyn Env> {
        match self {
            AnyEnv::Place(e) => Box::new(e),
            AnyEnv::Pick(e) => Box::new(e),
            AnyEnv::Hier(e) => Box::new(e),
            AnyEnv::Compat(e) => Box::new(e),
        }
    }

    pub fn core(&self) -> &dyn Env {
        match self {
            AnyEnv::Place(e) => e,
            AnyEnv::Pick(e) => e,
            AnyEnv::Hier(e) => e,
            AnyEnv::Compat(e) => e,
        }
    }

    pub fn core_mut(&mut self) -> &mut dyn Env {
        match self {
            AnyEnv::Place(e) => e,
            AnyEnv::Pick(e) => e,
            AnyEnv::Hier(e) => e,
            AnyEnv::Compat(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(items: &[(&str, OptionValue)]) -> Vec<(String, OptionValue)> {
        items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn workload_options_are_checked_and_named() {
        let ok = WorkloadConfig::from_options(&opts(&[
            ("num_hosts", OptionValue::Int(8)),
            ("host_cores", OptionValue::Pair(Box::new(OptionValue::Int(4)), Box::new(OptionValue::Int(8)))),
            ("burst_prob", OptionValue::Float(0.5)),
        ]))
        .unwrap();
        assert_eq!((ok.num_hosts, ok.host_cores, ok.burst_prob), (8, (4, 8), 0.5));
        let cases = [
            (opts(&[("num_hosts", OptionValue::Int(-1))]), "num_hosts must be a positive integer"),
            (opts(&[("num_hosts", OptionValue::Float(2.5))]), "num_hosts must be a positive integer"),
            (opts(&[("host_cores", OptionValue::Int(4))]), "host_cores must be a pair"),
            (opts(&[("burst_prob", OptionValue::Other("str".into()))]), "burst_prob must be a number"),
            (opts(&[("colour", OptionValue::Int(1))]), "unknown workload option \"colour\""),
        ];
        for (given, message) in cases {
            let err = WorkloadConfig::from_options(&given).unwrap_err().to_string();
            assert!(err.contains(message), "{err} lacks {message}");
        }
    }

    #[test]
    fn specs_refuse_what_cannot_be_built() {
        let no_trace = EnvSpec::new("pick", None, None, 100, "wait", 8, "none", "rlscheduler");
        assert!(no_trace.unwrap_err().to_string().contains("replays a trace"));
        let bad_mode = EnvSpec::new("juggle", None, None, 100, "wait", 8, "none", "simrs");
        assert!(bad_mode.unwrap_err().to_string().contains("unknown mode"));
        let bad_protocol = EnvSpec::new("pick", None, None, 100, "wait", 8, "none", "slurm");
        assert!(bad_protocol.unwrap_err().to_string().contains("unknown protocol"));
        let spec = EnvSpec::new("hierarchical", None, None, 100, "wait", 8, "none", "simrs").unwrap();
        let env = AnyEnv::build(&spec, 1).unwrap();
        let versus = env.boxed_versus(Some(Rule::Place(crate::heuristics::placement::Placement::FirstFit)));
        assert!(versus.err().unwrap().to_string().contains("no single-step heuristic"));
    }
}
