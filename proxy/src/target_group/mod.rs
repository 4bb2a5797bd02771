//! Target groups: health checks of their targets, and which targets take traffic.

pub mod probe;
