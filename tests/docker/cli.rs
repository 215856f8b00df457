//! The command-line tools against a running dockhand and the real engine: `dockhand routes`
//! and `dockhand check`.

use serde_json::Value;
use std::process::{Command, Output};

use crate::support::*;

/// Runs the dockhand binary with `args` (and this test run's `DOCKER_HOST`, if any).
fn dockhand_cli(args: &[&str]) -> Output {
    Command::new(DOCKHAND)
        .env_clear()
        .envs(std::env::var("DOCKER_HOST").map(|h| ("DOCKER_HOST".to_owned(), h)))
        .args(args)
        .output()
        .expect("the dockhand binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn routes_prints_the_running_instances_table_and_its_json() {
    require_docker!();
    let host = unique("cli-routes");
    let proxy = dockhand().start();
    let web = backend().name("web").vhost(&host).start();
    proxy.wait_status(&host, "/", 200);

    let admin = proxy.admin.to_string();
    let table = dockhand_cli(&["routes", "--admin", &admin]);
    assert!(table.status.success(), "{table:?}");
    let text = stdout(&table);
    let line = (text.lines())
        .find(|l| l.contains(&host))
        .unwrap_or_else(|| panic!("{host} not in:\n{text}"));
    assert!(line.contains(web.name()) && line.contains(" up "), "{line}");
    assert!(text.starts_with("generation "), "{text}");

    // The flag before the subcommand works too, and --json is the admin API's JSON.
    let json = dockhand_cli(&["--admin", &admin, "routes", "--json"]);
    assert!(json.status.success(), "{json:?}");
    let routes: Value = serde_json::from_slice(&json.stdout).expect("routes --json is JSON");
    let vhosts = routes["table"]["vhosts"].as_array().expect("vhosts");
    assert!(vhosts.iter().any(|v| v["host"] == host.as_str()));

    // Nothing listening: a clear error and a failure status, not a panic.
    drop(proxy);
    let gone = dockhand_cli(&["routes", "--admin", &admin]);
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("cannot read"));
    let bad = dockhand_cli(&["routes", "--admin", "nowhere"]);
    assert_eq!(bad.status.code(), Some(64), "{bad:?}");
}

#[test]
fn check_reports_every_container_and_fails_when_one_is_skipped() {
    require_docker!();
    let apps = network().start();
    // Stands in for dockhand's own container: `--container` makes its networks the reachable ones.
    let anchor = backend().name("anchor").network(&apps).start();
    let good = backend()
        .name("good")
        .vhost(&unique("good"))
        .network(&apps)
        .start();
    let bad = (backend().name("bad").vhost(&unique("bad")))
        .env("VIRTUAL_PORT", "eighty")
        .network(&apps)
        .start();
    let closed = (backend().name("closed").vhost(&unique("closed")))
        .env("VIRTUAL_PORT", "81")
        .network(&apps)
        .start();
    let apart = backend().name("apart").vhost(&unique("apart")).start();
    let paused = backend()
        .name("paused")
        .vhost(&unique("paused"))
        .network(&apps)
        .start();
    paused.pause();

    let output = dockhand_cli(&["check", "--container", anchor.name(), "--json"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let checks: Value = serde_json::from_slice(&output.stdout).expect("check --json is JSON");
    let of = |name: &str| -> Value {
        (checks.as_array().expect("a list").iter())
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not checked: {checks:#}"))
    };
    let problems = |c: &Value| c["problems"].to_string();

    let g = of(good.name());
    assert_eq!(g["verdict"], "routed", "{g:#}");
    assert_eq!(g["address"], good.ip(&apps).to_string());
    assert_eq!(g["problems"], serde_json::json!([]), "{g:#}");
    assert_eq!(g["routes"][0]["port"], 80);

    let b = of(bad.name());
    assert_eq!(b["verdict"], "skipped", "{b:#}");
    assert!(problems(&b).contains("VIRTUAL_PORT"), "{b:#}");

    let c = of(closed.name());
    assert_eq!(c["verdict"], "routed", "{c:#}");
    assert!(problems(&c).contains("port 81 does not accept"), "{c:#}");

    let a = of(apart.name());
    assert_eq!(a["address"], Value::Null, "{a:#}");
    assert!(problems(&a).contains("shares no network"), "{a:#}");

    let p = of(paused.name());
    assert_eq!(p["verdict"], "not_running", "{p:#}");
    assert!(problems(&p).contains("paused"), "{p:#}");

    // dockhand's own container is not checked; one without VIRTUAL_HOST is listed, not proxied.
    assert!(checks
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != anchor.name()));

    // The text form names each container and its problem.
    let text = dockhand_cli(&["check", "--container", anchor.name()]);
    assert_eq!(text.status.code(), Some(1));
    let text = stdout(&text);
    assert!(
        text.contains(&format!("{} (", bad.name())) && text.contains("SKIPPED"),
        "{text}"
    );
    assert!(
        text.contains("problem: skipped: invalid VIRTUAL_PORT"),
        "{text}"
    );
}

#[test]
fn check_without_docker_says_so_and_serves_nothing() {
    let output = Command::new(DOCKHAND)
        .env_clear()
        .args(["check", "--docker-host", "unix:///nonexistent/docker.sock"])
        .output()
        .expect("the dockhand binary runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
    // `--check` still validates the proxy's own configuration.
    let output = Command::new(DOCKHAND)
        .env_clear()
        .args(["--check", "--http-port", "8080"])
        .output()
        .expect("the dockhand binary runs");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("8080"));
}

#[test]
fn routes_and_check_work_inside_dockhands_container_as_the_readme_shows() {
    require_docker!();
    let (shared_host, apart_host) = (unique("cli-shared"), unique("cli-apart"));
    let front = network().start();
    let apart = network().start();
    let proxy = dockhand().in_container(&front).start();
    let shared = (backend().name("shared").vhost(&shared_host))
        .network(&front)
        .start();
    let lonely = (backend().name("lonely").vhost(&apart_host))
        .network(&apart)
        .start();
    proxy.wait_status(&shared_host, "/", 200);

    // The image sets DOCKHAND_ADMIN=0.0.0.0:9180: `routes` reads it on loopback.
    let routes = proxy.container().exec(&["/dockhand", "routes"]);
    assert!(routes.success(), "{routes:?}");
    assert!(
        routes.stdout.contains(&shared_host) && routes.stdout.contains(shared.name()),
        "{}",
        routes.stdout
    );

    // `check` finds its own container, as serving does: its networks decide reachability.
    let check = proxy.container().exec(&["/dockhand", "check", "--json"]);
    assert_eq!(check.code, Some(1), "{check:?}");
    let checks: Value = serde_json::from_str(&check.stdout).expect("check --json is JSON");
    let of = |name: &str| -> Value {
        (checks.as_array().expect("a list").iter())
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not checked: {checks:#}"))
    };
    assert_eq!(of(shared.name())["problems"], serde_json::json!([]));
    let lonely = of(lonely.name());
    assert_eq!(lonely["address"], Value::Null, "{lonely:#}");
    assert!(lonely["problems"].to_string().contains("shares no network"));
    let own = proxy.container().name();
    assert!(checks.as_array().unwrap().iter().all(|c| c["name"] != own));
}
