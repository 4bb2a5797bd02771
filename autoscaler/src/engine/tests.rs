//! Engine tests: hand-computed cases on a fake clock.
