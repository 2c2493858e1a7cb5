//! CPU time and memory of a process from `/proc`: user and system time from
//! `/proc/PID/stat` (this process's, to tell whether the generator was the
//! bottleneck; a proxy's, for `compare`), and peak RSS (`VmHWM`) from
//! `/proc/PID/status`.

use std::time::Duration;

use anyhow::Context as _;

/// Cumulative CPU time of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTimes {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Clock ticks per second of the times in `/proc/PID/stat`.
fn ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as u64,
        // USER_HZ is 100 on every Linux architecture in practice.
        _ => 100,
    }
}

/// `utime` and `stime` (fields 14 and 15) from the text of `/proc/PID/stat`.
pub fn parse_stat(text: &str, ticks: u64) -> Option<CpuTimes> {
    // Field 2, the command name, is in parentheses and may contain spaces and
    // parentheses itself: count fields after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = ticks.max(1);
    let d = |t: u64| Duration::from_nanos(t.saturating_mul(1_000_000_000 / ticks));
    Some(CpuTimes {
        user: d(utime),
        system: d(stime),
    })
}

/// CPU times of process `pid` (`None`: this process).
pub fn cpu_times(pid: Option<u32>) -> anyhow::Result<CpuTimes> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&text, ticks_per_second()).with_context(|| format!("{path}: unexpected format"))
}

/// `VmHWM` (peak resident set) in KiB from the text of `/proc/PID/status`.
pub fn parse_vm_hwm_kib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut parts = line["VmHWM:".len()..].split_ascii_whitespace();
    let n = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(n)
}

pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_hwm_kib(&text).with_context(|| format!("{path}: no VmHWM line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_strange_command_name() {
        let text =
            "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1021 0 0 0 250 37 0 0 20 0 3 0 \
                    123 456 789 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let t = parse_stat(text, 100).unwrap_or_else(|| panic!("unparsed"));
        assert_eq!(t.user, Duration::from_millis(2500));
        assert_eq!(t.system, Duration::from_millis(370));
        assert_eq!(t.total(), Duration::from_millis(2870));
        assert!(parse_stat("1 (x) S 1 2", 100).is_none());
        assert!(parse_stat("garbage", 100).is_none());
    }

    #[test]
    fn parses_vm_hwm() {
        let text = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(parse_vm_hwm_kib(text), Some(5120));
        assert_eq!(parse_vm_hwm_kib("VmRSS: 1 kB\n"), None);
    }

    #[test]
    fn reads_this_process() {
        // Burn a little CPU so the tick-granular counter moves.
        let before = cpu_times(None).unwrap_or_else(|e| panic!("{e}"));
        let until = std::time::Instant::now() + Duration::from_millis(60);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        let after = cpu_times(None).unwrap_or_else(|e| panic!("{e}"));
        assert!(after.since(&before).total() >= Duration::from_millis(20));
        assert!(peak_rss_kib(std::process::id()).unwrap_or(0) > 0);
    }
}
