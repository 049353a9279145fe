//! Policy layers in Rust: the `place` policy's fused forward pass for inference
//! (`place_net`) and its per-host layers for training (`place_train`), and the per-entity
//! layers the `pick` and `hierarchical` policies train through (`entity_train`).

pub mod entity_train;
pub mod place_net;
pub mod place_train;
