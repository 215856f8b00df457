//! `dockhand check`: reads every running container (and Swarm service) as discovery would
//! ([`dockhand_discovery::check`]), tries a TCP connection to each port it would route to, and
//! prints per container what would be routed and every problem. Serves nothing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use dockhand_discovery::check::{ContainerCheck, Kind, Verdict};

/// How long a backend port gets to accept a connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Exit status when Docker cannot be reached.
const EX_NO_DOCKER: u8 = 2;

/// Checks every running container as `config` would see them. Exit status 0 when every
/// proxied container can get traffic, 1 when one is skipped or has a problem, 2 when Docker
/// cannot be reached.
pub fn run(config: &dockhand_discovery::Config, json: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dockhand check: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let checks = runtime.block_on(async {
        let mut checks = dockhand_discovery::check::check(config).await?;
        probe_ports(&mut checks).await;
        Ok::<_, dockhand_discovery::EngineError>(checks)
    });
    let checks = match checks {
        Ok(checks) => checks,
        Err(error) => {
            eprintln!(
                "dockhand check: cannot read containers from {}: {error}",
                config.docker_host
            );
            return ExitCode::from(EX_NO_DOCKER);
        }
    };
    if json {
        match serde_json::to_string_pretty(&checks) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("dockhand check: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", render(&checks));
    }
    if checks.iter().any(|c| !c.problems.is_empty()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Tries each distinct port of each routed container that has an address, all at once; a port
/// that does not accept a connection within [`PROBE_TIMEOUT`] becomes a problem.
async fn probe_ports(checks: &mut [ContainerCheck]) {
    let mut probes = tokio::task::JoinSet::new();
    for (index, check) in checks.iter().enumerate() {
        let Some(ip) = check.address else { continue };
        let ports: BTreeSet<u16> = check.routes.iter().map(|r| r.port).collect();
        for port in ports {
            let addr = SocketAddr::new(ip, port);
            probes.spawn(async move {
                let connect = tokio::net::TcpStream::connect(addr);
                let why = match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(_) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
                };
                (index, addr, why)
            });
        }
    }
    let mut failed: Vec<(usize, SocketAddr, String)> = Vec::new();
    while let Some(done) = probes.join_next().await {
        if let Ok((index, addr, Some(why))) = done {
            failed.push((index, addr, why));
        }
    }
    failed.sort();
    for (index, addr, why) in failed {
        checks[index].problems.push(format!(
            "port {} does not accept connections at {addr} ({why}): its vhosts answer 502 \
             (set VIRTUAL_PORT to the port the app listens on)",
            addr.port()
        ));
    }
}

/// One paragraph per container, then a summary line.
fn render(checks: &[ContainerCheck]) -> String {
    let mut out = String::new();
    for check in checks {
        let id: String = check.id.chars().take(12).collect();
        let verdict = match check.verdict {
            Verdict::Routed => match check.address {
                Some(ip) => format!("routed, at {ip}"),
                None => "routed, without an address".to_owned(),
            },
            Verdict::Skipped => "SKIPPED".to_owned(),
            Verdict::NotProxied => "not proxied (no VIRTUAL_HOST)".to_owned(),
            Verdict::SwarmTask => "a Swarm task (routed as a service)".to_owned(),
            Verdict::NotRunning => "not running".to_owned(),
        };
        let kind = match check.kind {
            Kind::Container => "",
            Kind::Service => "service ",
            Kind::Task => "swarm task ",
        };
        let _ = writeln!(out, "{kind}{} ({id}): {verdict}", check.name);
        for route in &check.routes {
            // The word users write in VIRTUAL_PROTO (`http`, `https`, `h2c`).
            let proto = serde_json::to_value(route.proto).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}{} -> port {} ({})",
                route.host,
                route.path,
                route.port,
                proto.as_str().unwrap_or("?")
            );
        }
        for problem in &check.problems {
            let _ = writeln!(out, "  problem: {problem}");
        }
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let with_problems = checks.iter().filter(|c| !c.problems.is_empty()).count();
    let _ = writeln!(
        out,
        "{} checked: {} routed, {} skipped, {} not proxied; {with_problems} with problems",
        checks.len(),
        count(Verdict::Routed),
        count(Verdict::Skipped),
        count(Verdict::NotProxied),
    );
    out
}
