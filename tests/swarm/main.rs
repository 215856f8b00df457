//! dockhand against a real Docker Swarm (issue 19): first a single-node swarm, then a 3-node one,
//! each built by testkit's [`swarm`](dockhand_testkit::swarm) harness apart from the main engine
//! (a swarm there would switch every other dockhand on that engine into Swarm mode).
//!
//! Building a swarm takes seconds and only one runs per machine at a time, so this binary has
//! its own harness (`harness = false`): each phase builds one swarm and one dockhand on its
//! manager, runs its tests one after the other (each with its own services and vhosts), then
//! drops the swarm, which removes everything, whether the tests passed or not. Arguments work as
//! with libtest: a filter (substring of the test name), `--exact`, `--list`; other flags are
//! ignored. Gated like the Docker suite: skipped without Docker, unless
//! `DOCKHAND_REQUIRE_DOCKER=1`.

mod multi_node;
mod single_node;
mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use dockhand_testkit::{images, swarm};
use support::Cluster;

/// A test of a phase: its name and body.
type Test = (&'static str, fn(&Cluster));

fn main() {
    let args = Args::parse();
    let phases: [(&str, &[Test]); 2] = [
        ("single_node", single_node::TESTS),
        ("multi_node", multi_node::TESTS),
    ];
    if args.list {
        for (phase, tests) in &phases {
            for (name, _) in *tests {
                println!("{phase}::{name}: test");
            }
        }
        return;
    }
    if args.ignored {
        // No test here is ignored.
        return;
    }
    if !dockhand_testkit::docker_or_skip("swarm") {
        return;
    }
    let started = Instant::now();
    let (mut passed, mut failed) = (0, Vec::new());
    for (phase, tests) in phases {
        let selected: Vec<&Test> = tests
            .iter()
            .filter(|(name, _)| args.selects(&format!("{phase}::{name}")))
            .collect();
        if selected.is_empty() {
            continue;
        }
        let nodes = if phase == "single_node" { 1 } else { 3 };
        let built = catch_unwind(|| {
            let swarm = swarm::swarm()
                .nodes(nodes)
                // Node death is seen in 2–3 heartbeats: about 3 s instead of Docker's 15 s.
                .heartbeat(Duration::from_secs(1))
                .image(images::backend_image())
                .start();
            Cluster::new(swarm)
        });
        let cluster = match built {
            Ok(cluster) => cluster,
            Err(_) => {
                failed.extend(selected.iter().map(|(name, _)| format!("{phase}::{name}")));
                continue;
            }
        };
        for (name, test) in selected {
            let full = format!("{phase}::{name}");
            let test_started = Instant::now();
            let outcome = run_test(&full, &cluster, *test);
            let took = test_started.elapsed();
            if outcome {
                println!("test {full} ... ok ({took:.1?})");
                passed += 1;
            } else {
                println!("test {full} ... FAILED ({took:.1?})");
                failed.push(full);
            }
        }
        drop(cluster);
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; finished in {:.1?}",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        started.elapsed()
    );
    if !failed.is_empty() {
        for name in &failed {
            println!("    {name}");
        }
        std::process::exit(101);
    }
}

/// Runs `test` on a thread named after it (the kit names what it creates after the thread),
/// and says whether it passed.
fn run_test(name: &str, cluster: &Cluster, test: fn(&Cluster)) -> bool {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, || {
                catch_unwind(AssertUnwindSafe(|| test(cluster))).is_ok()
            })
            .is_ok_and(|handle| handle.join().unwrap_or(false))
    })
}

/// The libtest arguments this harness understands.
struct Args {
    filter: Option<String>,
    exact: bool,
    list: bool,
    ignored: bool,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            filter: None,
            exact: false,
            list: false,
            ignored: false,
        };
        let mut iter = std::env::args().skip(1);
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "--exact" => args.exact = true,
                "--list" => args.list = true,
                "--ignored" => args.ignored = true,
                // Flags of libtest that take a value.
                "--test-threads" | "--format" | "--color" | "--logfile" | "--skip" | "-Z" => {
                    iter.next();
                }
                flag if flag.starts_with('-') => {}
                filter => args.filter = Some(filter.to_owned()),
            }
        }
        args
    }

    fn selects(&self, name: &str) -> bool {
        match &self.filter {
            None => true,
            Some(filter) if self.exact => name == filter,
            Some(filter) => name.contains(filter.as_str()),
        }
    }
}
