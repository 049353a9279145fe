//! The hand-written scheduling rules: queue priorities (`policy`), host placement
//! (`placement`), backfilling (`backfill`), and episodes scored against a rule (`versus`).

pub mod backfill;
pub mod placement;
pub mod policy;
pub mod versus;
