//! Watching a target group's discovery source (DNS names or a file) and turning answers into
//! [`crate::TargetUpdate`]s. Implemented in issue 4 (see `dns.rs`, `file.rs`).
