//! Target groups at run time: how a target is picked and how its share of traffic is weighted.

pub mod anomaly;
pub mod balancer;
