//! Prometheus' standard process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`), read from `/proc/self` at each scrape.
//!
//! The prometheus crate's `process` feature does the same through the procfs crate; reading the
//! few files here avoids that dependency. On a system without `/proc` nothing is reported.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Registry};

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`), fixed at 100 by Linux's ABI on
/// every architecture it supports.
const TICKS_PER_SECOND: f64 = 100.0;

/// Registers the process collector in `registry`. Fails when the names are taken there.
pub fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    let gauge = |name: &str, help: &str| Gauge::new(name, help);
    let process = Process {
        cpu: Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )?,
        resident: gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )?,
        virtual_memory: gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        )?,
        open_fds: gauge("process_open_fds", "Number of open file descriptors.")?,
        max_fds: gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        )?,
        start_time: gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        )?,
    };
    registry.register(Box::new(process))
}

struct Process {
    cpu: Counter,
    resident: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge,
}

impl Collector for Process {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.cpu.desc(),
            self.resident.desc(),
            self.virtual_memory.desc(),
            self.open_fds.desc(),
            self.max_fds.desc(),
            self.start_time.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(stat) = read("/proc/self/stat").as_deref().and_then(Stat::parse) else {
            return Vec::new();
        };
        let cpu = stat.cpu_ticks as f64 / TICKS_PER_SECOND;
        // A counter only goes up: add what was spent since the last scrape.
        let spent = cpu - self.cpu.get();
        if spent > 0.0 {
            self.cpu.inc_by(spent);
        }
        self.virtual_memory.set(stat.vsize as f64);
        if let Some(kib) = read("/proc/self/status").as_deref().and_then(resident_kib) {
            self.resident.set(kib as f64 * 1024.0);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
        }
        if let Some(max) = read("/proc/self/limits")
            .as_deref()
            .and_then(max_open_files)
        {
            self.max_fds.set(max as f64);
        }
        if let Some(boot) = read("/proc/stat").as_deref().and_then(boot_time) {
            let start = boot as f64 + stat.start_ticks as f64 / TICKS_PER_SECOND;
            self.start_time.set(start);
        }
        [
            self.cpu.collect(),
            self.resident.collect(),
            self.virtual_memory.collect(),
            self.open_fds.collect(),
            self.max_fds.collect(),
            self.start_time.collect(),
        ]
        .concat()
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, PartialEq)]
struct Stat {
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Start time after boot, in clock ticks.
    start_ticks: u64,
    /// Virtual memory size in bytes.
    vsize: u64,
}

impl Stat {
    /// Fields are counted after the command name, which is in parentheses and may itself hold
    /// spaces and parentheses (hence the last `)`).
    fn parse(stat: &str) -> Option<Stat> {
        let (_, after) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // `fields[0]` is field 3 (state) of proc(5): utime is 14, stime 15, starttime 22,
        // vsize 23.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            cpu_ticks: field(14)? + field(15)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
        })
    }
}

/// `VmRSS:  1234 kB` in `/proc/self/status`.
fn resident_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `btime` in `/proc/stat`: boot time, Unix seconds.
fn boot_time(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_command_name_holding_spaces_and_parentheses() {
        let stat = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 \
                    12345 987654 321 18446744073709551615";
        assert_eq!(
            Stat::parse(stat),
            Some(Stat {
                cpu_ticks: 300,
                start_ticks: 12345,
                vsize: 987654,
            })
        );
        assert_eq!(Stat::parse("garbage"), None);
    }

    #[test]
    fn reads_rss_limits_and_boot_time() {
        assert_eq!(resident_kib("Name:\tx\nVmRSS:\t  5120 kB\n"), Some(5120));
        let limits = "Limit  Soft Limit  Hard Limit  Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1048576));
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1700000000\n"), Some(1700000000));
    }

    #[test]
    fn collects_this_process() {
        let registry = Registry::new();
        register(&registry).unwrap();
        let names: Vec<String> = (registry.gather().iter())
            .map(|f| f.name().to_owned())
            .collect();
        assert!(names.contains(&"process_open_fds".to_owned()), "{names:?}");
        assert!(names.contains(&"process_resident_memory_bytes".to_owned()));
    }
}
