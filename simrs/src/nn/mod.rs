//! Policy layers in Rust: the `place` policy's fused forward pass for inference
//! (`place_net`) and its per-host layers for training (`place_train`), the per-entity
//! layers the `pick` and `hierarchical` policies train through (`entity_train`), and the
//! whole of a `pick` PPO minibatch's loss and gradients (`pick_update`), and the blocked
//! products the per-entity training pass runs on (`blocked`).

pub mod blocked;
pub mod entity_train;
pub mod pick_update;
pub mod place_net;
pub mod place_train;
