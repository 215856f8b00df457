//! The state driven with hand-built containers, publishing to a recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::models::{EndpointSettings, NetworkSettings};
use dockhand_spec::{Publication, Publish, VhostSpec, VhostUpdate};
use prometheus::Registry;

use super::*;
use crate::contract::tests::container;

/// A fake publisher: keeps every publication, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Publication>>>);

impl Publish for Recorder {
    fn publish(&mut self, publication: Publication) {
        self.0.lock().unwrap().push(publication);
    }
}

impl Recorder {
    /// What was published since the last call, one line per vhost.
    fn take(&self) -> Vec<Vec<String>> {
        let published = std::mem::take(&mut *self.0.lock().unwrap());
        published.iter().map(lines).collect()
    }
}

/// `full a.test → web1,web2`, `set a.test → web1`, `remove a.test`.
fn lines(publication: &Publication) -> Vec<String> {
    fn vhost(kind: &str, v: &VhostSpec) -> String {
        let backends: Vec<String> = (v.paths.iter().flat_map(|p| &p.backends))
            .map(|b| match b.addr {
                Some(addr) => format!("{}@{addr}", b.name),
                None => b.name.clone(),
            })
            .collect();
        format!("{kind} {} → {}", v.host, backends.join(","))
    }
    match publication {
        Publication::Full(vhosts) => vhosts.iter().map(|v| vhost("full", v)).collect(),
        Publication::Changes(updates) => (updates.iter())
            .map(|u| match u {
                VhostUpdate::Set(v) => vhost("set", v),
                VhostUpdate::Remove(host) => format!("remove {host}"),
            })
            .collect(),
    }
}

/// Running container `name` (ID `<name>-id`) on the `bridge` network at 172.17.0.`n`.
fn running(name: &str, n: u8, env: &[&str]) -> ContainerInspectResponse {
    let mut c = container(env, &[], &[]);
    c.name = Some(format!("/{name}"));
    c.id = Some(format!("{name}-id"));
    let endpoint = EndpointSettings {
        ip_address: Some(format!("172.17.0.{n}")),
        ..Default::default()
    };
    c.network_settings = Some(NetworkSettings {
        networks: Some(HashMap::from([("bridge".to_owned(), endpoint)])),
        ..Default::default()
    });
    c
}

fn state() -> (State, Recorder) {
    let recorder = Recorder::default();
    let metrics = DiscoveryMetrics::new(&Registry::new()).unwrap();
    let state = State::new(Box::new(recorder.clone()), metrics, HttpsPolicy::default());
    (state, recorder)
}

#[test]
fn publishes_the_whole_on_sync_then_only_what_events_change() {
    let (mut state, recorder) = state();
    let web1 = running("web1", 2, &["VIRTUAL_HOST=a.test"]);
    let web2 = running("web2", 3, &["VIRTUAL_HOST=a.test"]);
    let api = running("api", 4, &["VIRTUAL_HOST=b.test", "VIRTUAL_PORT=8080"]);
    state.replace_all(vec![web1.clone(), web2, api]);
    state.publish_full();
    assert_eq!(
        recorder.take(),
        [[
            "full a.test → web1@172.17.0.2:80,web2@172.17.0.3:80",
            "full b.test → api@172.17.0.4:8080",
        ]]
    );

    // Events: web2 dies, web3 starts on a new vhost; one publication for the burst.
    state.remove("web2-id");
    state.upsert(running("web3", 5, &["VIRTUAL_HOST=c.test"]));
    assert!(state.publish_changes());
    assert_eq!(
        recorder.take(),
        [[
            "set a.test → web1@172.17.0.2:80",
            "set c.test → web3@172.17.0.5:80",
        ]]
    );
    // Nothing new: nothing published.
    state.upsert(web1.clone());
    assert!(!state.publish_changes());
    assert!(recorder.take().is_empty());

    // `docker stop web1`: out of rotation at the kill, before it dies.
    state.mark_stopping("web1-id");
    state.publish_changes();
    assert_eq!(recorder.take(), [["remove a.test"]]);

    // A resync publishes the whole again, without what is gone (b.test's container too).
    state.replace_all(vec![web1, running("web3", 5, &["VIRTUAL_HOST=c.test"])]);
    state.publish_full();
    assert_eq!(
        recorder.take(),
        [["full c.test → web3@172.17.0.5:80"]],
        "web1 is still stopping"
    );
}

#[test]
fn invalid_and_unhealthy_containers_are_described_as_the_contract_says() {
    let (mut state, recorder) = state();
    let bad = running("bad", 2, &["VIRTUAL_HOST=a.test", "VIRTUAL_PORT=http"]);
    let mut sick = running("sick", 3, &["VIRTUAL_HOST=s.test"]);
    let health = serde_json::json!({"Running": true, "Health": {"Status": "unhealthy"}});
    sick.state = Some(serde_json::from_value(health).unwrap());
    state.replace_all(vec![bad, sick]);
    state.publish_full();
    let published = std::mem::take(&mut *recorder.0.lock().unwrap());
    let [Publication::Full(vhosts)] = published.as_slice() else {
        panic!("{published:?}")
    };
    let hosts: Vec<&str> = vhosts.iter().map(|v| v.host.as_str()).collect();
    assert_eq!(hosts, ["s.test"], "the invalid container is skipped");
    let readiness = vhosts[0].paths[0].backends[0].readiness;
    assert_eq!(readiness, dockhand_spec::Readiness::Failing);
}

#[test]
fn swarm_task_containers_are_left_to_the_swarm_provider() {
    let (mut state, recorder) = state();
    let plain = running("plain", 2, &["VIRTUAL_HOST=a.test"]);
    let mut task = running("web.1.x7f", 3, &["VIRTUAL_HOST=a.test"]);
    let labels = HashMap::from([("com.docker.swarm.task.id".to_owned(), "x7f0task".to_owned())]);
    task.config.get_or_insert_with(Default::default).labels = Some(labels);
    state.replace_all(vec![plain, task.clone()]);
    state.publish_full();
    assert_eq!(recorder.take(), [["full a.test → plain@172.17.0.2:80"]]);
    // An event about the task's container changes nothing either.
    state.upsert(task);
    assert!(!state.publish_changes());
}
