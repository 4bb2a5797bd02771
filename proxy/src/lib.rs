//! scalegate's ALB data plane: listeners, rules, actions, target groups, metrics.
#![forbid(unsafe_code)]

pub mod actions;
pub mod matching;
pub mod routing;
