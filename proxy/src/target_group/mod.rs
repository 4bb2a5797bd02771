//! Target groups: their targets and how a request picks one of them.

pub mod stickiness;
