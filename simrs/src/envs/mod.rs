//! The decision modes as environments: what they share (`env`), one module per mode (`pick`,
//! `place`, `hierarchical`, and RLScheduler's compatible `pick`), the environment spec that
//! chooses and configures one, and the vector environment that steps many at once.

pub mod compat_pick_env;
pub mod env;
pub mod hier_env;
pub mod pick_env;
pub mod place_env;
pub mod spec;
pub mod vec_env;
