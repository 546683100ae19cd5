//! CPU time of a process, read from `/proc/<pid>/stat` (Linux only): user plus system time of
//! all its threads, so a benchmark can say which process the cores went to.

use std::time::Duration;

/// The kernel reports these times in USER_HZ ticks, 100 per second on every Linux architecture
/// the gateway is built for (the ABI fixes it, whatever the kernel's own HZ).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time used so far by process `pid`; `None` when it is gone or this is not Linux.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// utime and stime are fields 14 and 15; the command name (field 2) is in parentheses and may
/// itself hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * 1_000 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_ticks_after_the_command_name() {
        let stat =
            "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 6 0 1000 0 0";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(3_250)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(cpu_time(std::process::id()).is_some());
    }
}
