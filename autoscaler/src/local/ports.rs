//! Ports for `$PORT`, like ECS dynamic port mapping: the kernel picks a free loopback port.
//!
//! The port is free when picked and the task binds it a few milliseconds later. In between
//! another program may take it (the picked port is in the ephemeral range, which outgoing
//! connections also draw from); the task then fails to bind, exits, and is replaced with a new
//! port. Within scalegate that race cannot happen: a port is never handed out twice while a task
//! holds it, nor twice in a row before its task has started.

use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, TcpListener};

/// How many recently handed-out ports are remembered, so that two tasks started at the same
/// time never get the same port even before either has bound it.
const REMEMBERED: usize = 64;

/// Attempts before giving up (each is one bind to port 0).
const ATTEMPTS: usize = 32;

/// Hands out free loopback ports, avoiding ports of live tasks and recent picks.
#[derive(Debug, Default)]
pub(crate) struct PortPicker {
    recent: VecDeque<u16>,
}

impl PortPicker {
    /// A free port on 127.0.0.1 not in `in_use` and not handed out recently.
    pub(crate) fn pick(&mut self, in_use: &HashSet<u16>) -> std::io::Result<u16> {
        for _ in 0..ATTEMPTS {
            // Bound and closed at once: the kernel says which port is free now.
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            if in_use.contains(&port) || self.recent.contains(&port) {
                continue;
            }
            if self.recent.len() == REMEMBERED {
                self.recent.pop_front();
            }
            self.recent.push_back(port);
            return Ok(port);
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free loopback port after {ATTEMPTS} attempts"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_bindable_ports() {
        let mut picker = PortPicker::default();
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let port = picker.pick(&HashSet::new()).unwrap();
            assert!(seen.insert(port), "port {port} handed out twice");
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
        }
    }

    #[test]
    fn skips_ports_in_use() {
        let mut picker = PortPicker::default();
        let first = picker.pick(&HashSet::new()).unwrap();
        // Forget the recent list; only `in_use` protects the port now.
        picker.recent.clear();
        let in_use = HashSet::from([first]);
        for _ in 0..20 {
            assert_ne!(picker.pick(&in_use).unwrap(), first);
        }
    }
}
