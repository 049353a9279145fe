//! Policy layers in Rust: the `place` policy's fused forward pass for inference
//! (`place_net`) and its per-host layers for training (`place_train`), the per-entity
//! layers the `pick` and `hierarchical` policies train through (`entity_train`), the
//! blocked products its training pass runs on (`blocked`), and the whole of a `pick` PPO
//! minibatch's loss and gradients (`pick_update`).

pub mod blocked;
pub mod entity_train;
pub mod pick_update;
pub mod place_net;
pub mod place_train;
