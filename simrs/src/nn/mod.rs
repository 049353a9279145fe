//! The `place` policy's per-host layers in Rust: the fused forward pass for inference
//! (`place_net`) and the forward and backward pass for training (`place_train`).

pub mod place_net;
pub mod place_train;
