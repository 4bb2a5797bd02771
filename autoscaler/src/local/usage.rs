//! CPU and memory of a task's processes, read from `/proc`.
//!
//! A task is a process group (its leader is the task's process, or the `task-exec` supervisor in
//! front of it), so its use is the sum over the group's members: a shell that forks workers is
//! measured whole. One walk of `/proc` totals every task's group at once, and the runtime reuses
//! that walk for the tasks it samples in the same instant, so the cost is one directory walk per
//! sampling round, not one per task.
//!
//! Parsed by hand rather than with the `procfs` crate: four numbers from one file per process
//! (`/proc/<pid>/stat`: group, CPU ticks, resident pages) are a few lines, where `procfs` brings
//! chrono, flate2 and a rustix of its own into the build.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use nix::unistd::{sysconf, SysconfVar};

use crate::backend::ResourceUsage;

/// The fields of `/proc/<pid>/stat` the autoscaler needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessStat {
    /// Process group (field 5).
    pub pgrp: i32,
    /// `utime + stime + cutime + cstime` (fields 14–17), in clock ticks. The children's part
    /// keeps the sum steady when a member reaps a finished child: the child's time moves into
    /// its parent's `cutime` instead of vanishing with it.
    pub cpu_ticks: u64,
    /// Resident set size in pages (field 24; the same counter as `statm`'s second field).
    pub rss_pages: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may
/// itself contain spaces and parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(line: &str) -> Option<ProcessStat> {
    let after_name = &line[line.rfind(')')? + 1..];
    // Index 0 is field 3 (state), so field N is at index N - 3.
    let fields: Vec<&str> = after_name.split_ascii_whitespace().take(22).collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let ticks = |n: usize| -> Option<u64> {
        // cutime/cstime are signed in the kernel's format; never negative in practice.
        Some(field(n)?.parse::<i64>().ok()?.max(0) as u64)
    };
    Some(ProcessStat {
        pgrp: field(5)?.parse().ok()?,
        cpu_ticks: ticks(14)? + ticks(15)? + ticks(16)? + ticks(17)?,
        rss_pages: field(24)?.parse::<i64>().ok()?.max(0) as u64,
    })
}

/// One process group's totals at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GroupTotals {
    /// CPU ticks used by the group's live members (and the children they reaped).
    pub cpu_ticks: u64,
    /// Resident pages of the group's members, leaving out the supervisor when asked to.
    pub rss_pages: u64,
    /// How many processes were in the group.
    pub processes: u32,
}

/// One walk of `/proc`, totalled for the process groups that were asked for. A group that was
/// asked for and has no members left is present with zero totals.
#[derive(Debug, Clone)]
pub(crate) struct ProcSnapshot {
    /// When the walk started; CPU deltas are measured against this, not the call time.
    pub taken_at: Instant,
    /// Totals by process group ID.
    pub groups: HashMap<i32, GroupTotals>,
}

/// Walks `/proc` once. `wanted` maps each process group to whether its leader's memory is left
/// out (the leader is scalegate's supervisor, whose few MiB are not the task's).
pub(crate) fn scan(wanted: &HashMap<i32, bool>) -> ProcSnapshot {
    let taken_at = Instant::now();
    let mut groups: HashMap<i32, GroupTotals> = wanted
        .keys()
        .map(|&pgid| (pgid, GroupTotals::default()))
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ProcSnapshot { taken_at, groups };
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may exit between the directory listing and the read: skip it.
        let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(stat) = parse_stat(&line) else {
            continue;
        };
        let Some(&skip_leader_memory) = wanted.get(&stat.pgrp) else {
            continue;
        };
        let totals = groups.entry(stat.pgrp).or_default();
        totals.cpu_ticks += stat.cpu_ticks;
        totals.processes += 1;
        if !(skip_leader_memory && pid == stat.pgrp) {
            totals.rss_pages += stat.rss_pages;
        }
    }
    ProcSnapshot { taken_at, groups }
}

/// A task's CPU counter at one instant, the baseline for the next sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    /// Group CPU ticks.
    pub ticks: u64,
    /// When they were read.
    pub at: Instant,
}

/// CPU used between two samples as a percentage of the reserved CPU units (1024 units = one
/// core = 100 %). Ticks that went backwards (a member reaped by a process outside the group
/// took its time with it) count as no use rather than negative use.
pub(crate) fn cpu_percent(previous: CpuSample, now: CpuSample, cpu_units: u32) -> f64 {
    let wall = now.at.saturating_duration_since(previous.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    let used_seconds =
        now.ticks.saturating_sub(previous.ticks) as f64 / clock_ticks_per_second() as f64;
    let reserved_cores = f64::from(cpu_units.max(1)) / 1024.0;
    used_seconds / wall / reserved_cores * 100.0
}

/// Resident memory as a percentage of the reserved MiB.
pub(crate) fn memory_percent(rss_pages: u64, memory_mib: u32) -> f64 {
    let used = rss_pages as f64 * page_size() as f64;
    let reserved = f64::from(memory_mib.max(1)) * 1024.0 * 1024.0;
    used / reserved * 100.0
}

/// Both percentages from a group's totals and its previous CPU sample.
pub(crate) fn usage_between(
    previous: CpuSample,
    now: CpuSample,
    totals: GroupTotals,
    cpu_units: u32,
    memory_mib: u32,
) -> ResourceUsage {
    ResourceUsage {
        cpu_percent: cpu_percent(previous, now, cpu_units),
        memory_percent: memory_percent(totals.rss_pages, memory_mib),
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/<pid>/stat`'s times (100 on Linux).
pub(crate) fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| positive_sysconf(SysconfVar::CLK_TCK).unwrap_or(100))
}

/// `sysconf(_SC_PAGE_SIZE)`: the unit of the resident set size.
pub(crate) fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| positive_sysconf(SysconfVar::PAGE_SIZE).unwrap_or(4096))
}

fn positive_sysconf(variable: SysconfVar) -> Option<u64> {
    match sysconf(variable) {
        Ok(Some(value)) if value > 0 => Some(value as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        // Fields 3..=24 of a real line, with utime 7, stime 3, cutime 20, cstime 5, rss 1234.
        let line = "4242 (my (odd) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 7 3 20 5 20 0 1 0 \
                    12345 10000000 1234 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            stat,
            ProcessStat {
                pgrp: 4240,
                cpu_ticks: 35,
                rss_pages: 1234,
            }
        );
    }

    #[test]
    fn rejects_truncated_lines() {
        assert_eq!(parse_stat("12 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
    }

    #[test]
    fn own_process_is_found_in_its_group() {
        let own_group = nix::unistd::getpgrp().as_raw();
        let snapshot = scan(&HashMap::from([(own_group, false)]));
        let totals = snapshot.groups[&own_group];
        assert!(totals.processes >= 1);
        assert!(totals.rss_pages > 0);
    }

    #[test]
    fn a_group_with_no_members_reports_zero() {
        // Process group IDs are positive; -5 never exists.
        let snapshot = scan(&HashMap::from([(-5, false)]));
        assert_eq!(snapshot.groups[&-5], GroupTotals::default());
    }

    #[test]
    fn cpu_percent_is_relative_to_reserved_units() {
        let start = Instant::now();
        let tps = clock_ticks_per_second();
        let before = CpuSample {
            ticks: 1_000,
            at: start,
        };
        // One core busy for two seconds.
        let after = CpuSample {
            ticks: 1_000 + 2 * tps,
            at: start + Duration::from_secs(2),
        };
        assert!((cpu_percent(before, after, 1024) - 100.0).abs() < 1e-9);
        assert!((cpu_percent(before, after, 512) - 200.0).abs() < 1e-9);
        assert!((cpu_percent(before, after, 2048) - 50.0).abs() < 1e-9);
        // Ticks going backwards and zero elapsed time are not errors.
        assert_eq!(cpu_percent(after, before, 1024), 0.0);
        assert_eq!(cpu_percent(before, before, 1024), 0.0);
    }

    #[test]
    fn memory_percent_is_relative_to_reserved_mib() {
        let pages_per_mib = 1024 * 1024 / page_size();
        assert!((memory_percent(64 * pages_per_mib, 128) - 50.0).abs() < 1e-9);
        assert_eq!(memory_percent(0, 128), 0.0);
    }
}
