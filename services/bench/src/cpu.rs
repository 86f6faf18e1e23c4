//! CPU time used by this process, where the OS reports it without a system call wrapper
//! (`unsafe` is denied in the workspace): Linux's `/proc/self/stat`.

use std::time::Duration;

/// Ticks per second of `/proc` CPU times (`USER_HZ`): fixed at 100 by the Linux user ABI,
/// whatever the kernel's internal tick rate.
const USER_HZ: u64 = 100;

/// User plus system CPU time of every thread of this process so far; `None` where `/proc` is
/// not available.
pub(crate) fn process_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// `utime` and `stime` are fields 14 and 15 of proc(5); counting starts after the command
/// name, which is parenthesised and may itself contain spaces or parentheses.
fn parse_stat(stat: &str) -> Option<Duration> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_added() {
        let stat = "4242 (tokio (rt) x) S 1 2 3 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(3_250)));
    }

    #[test]
    fn a_truncated_line_is_not_a_time() {
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
    }
}
