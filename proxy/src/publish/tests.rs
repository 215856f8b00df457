//! Two fake providers publishing into one publisher.

use dockhand_spec::{
    BackendSpec, HttpsMethod, PathSpec, ProviderId, Publication, Publish, Readiness, VhostSpec,
    VhostUpdate,
};

use super::*;

const CONTAINERS: ProviderId = ProviderId::new("containers");
const SWARM: ProviderId = ProviderId::new("swarm");

fn backend(name: &str, ip: u8) -> BackendSpec {
    BackendSpec {
        name: name.to_owned(),
        id: format!("{name}-id"),
        addr: Some(([10, 0, 0, ip], 80).into()),
        readiness: Readiness::Unchecked,
        origin: Default::default(),
    }
}

fn path(path: &str, backends: Vec<BackendSpec>) -> PathSpec {
    PathSpec {
        path: path.to_owned(),
        dest: None,
        proto: Default::default(),
        balance: Default::default(),
        keepalive: Default::default(),
        network_access: Default::default(),
        backends,
    }
}

fn vhost(host: &str, paths: Vec<PathSpec>) -> VhostSpec {
    VhostSpec {
        host: host.to_owned(),
        paths,
        https: Default::default(),
    }
}

fn publisher(default_host: Option<&str>) -> (Publisher, Registry) {
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    (
        Publisher::new(default_host, metrics, &registry).unwrap(),
        registry,
    )
}

/// The served table as `host path → backend names`, in table order.
fn served(reader: &TableReader) -> Vec<String> {
    let json = serde_json::to_value(&**reader.load()).unwrap();
    let mut out = Vec::new();
    for vhost in json["vhosts"].as_array().unwrap() {
        for path in vhost["paths"].as_array().unwrap() {
            let names: Vec<&str> = (path["backends"].as_array().unwrap().iter())
                .map(|b| b["container"].as_str().unwrap())
                .collect();
            let (host, path) = (&vhost["host"], &path["path"]);
            out.push(format!(
                "{} {} → {}",
                host.as_str().unwrap(),
                path.as_str().unwrap(),
                names.join(",")
            ));
        }
    }
    out
}

#[test]
fn two_providers_serve_one_vhost_together() {
    let (publisher, _registry) = publisher(None);
    let reader = publisher.reader();
    let mut containers = publisher.provider(CONTAINERS);
    let mut swarm = publisher.provider(SWARM);
    let mut mine = vhost("a.tld", vec![path("/", vec![backend("c1", 1)])]);
    mine.https.method = HttpsMethod::NoRedirect;
    containers.publish(Publication::Full(vec![mine]));
    let theirs = vhost(
        "a.tld",
        vec![
            path("/", vec![backend("t1", 11)]),
            path("/api", vec![backend("t2", 12)]),
        ],
    );
    swarm.publish(Publication::Full(vec![theirs]));

    assert_eq!(served(&reader), ["a.tld / → c1,t1", "a.tld /api → t2"]);
    let table = reader.load();
    let (_, https) = table.https_vhost(Some("a.tld")).unwrap();
    assert_eq!(
        https.method,
        HttpsMethod::NoRedirect,
        "the first provider's settings"
    );
    assert_eq!(table.generation(), 2);
    assert_eq!(publisher.tracked_backends(), 3);
}

#[test]
fn one_providers_resync_never_drops_the_others_routes() {
    let (publisher, _registry) = publisher(None);
    let reader = publisher.reader();
    let mut containers = publisher.provider(CONTAINERS);
    let mut swarm = publisher.provider(SWARM);
    containers.publish(Publication::Full(vec![
        vhost("a.tld", vec![path("/", vec![backend("c1", 1)])]),
        vhost("b.tld", vec![path("/", vec![backend("c2", 2)])]),
    ]));
    swarm.publish(Publication::Full(vec![
        vhost("a.tld", vec![path("/", vec![backend("t1", 11)])]),
        vhost("c.tld", vec![path("/", vec![backend("t3", 13)])]),
    ]));
    assert_eq!(
        served(&reader),
        ["a.tld / → c1,t1", "b.tld / → c2", "c.tld / → t3"]
    );

    // The containers' resync finds only b.tld now: a.tld keeps the Swarm task, c.tld stays.
    containers.publish(Publication::Full(vec![vhost(
        "b.tld",
        vec![path("/", vec![backend("c2", 2)])],
    )]));
    assert_eq!(
        served(&reader),
        ["a.tld / → t1", "b.tld / → c2", "c.tld / → t3"]
    );
    assert_eq!(publisher.tracked_backends(), 3, "c1's state is dropped");

    // Swarm goes away entirely: the containers' routes stay.
    swarm.publish(Publication::Full(Vec::new()));
    assert_eq!(served(&reader), ["b.tld / → c2"]);
    assert_eq!(publisher.tracked_backends(), 1);
}

#[test]
fn changes_touch_only_the_publishing_providers_part() {
    let (publisher, _registry) = publisher(None);
    let reader = publisher.reader();
    let mut containers = publisher.provider(CONTAINERS);
    let mut swarm = publisher.provider(SWARM);
    containers.publish(Publication::Full(vec![vhost(
        "a.tld",
        vec![path("/", vec![backend("c1", 1)])],
    )]));
    swarm.publish(Publication::Changes(vec![VhostUpdate::Set(vhost(
        "a.tld",
        vec![path("/", vec![backend("t1", 11)])],
    ))]));
    assert_eq!(served(&reader), ["a.tld / → c1,t1"]);

    // Swarm withdraws a.tld: the containers still serve it.
    swarm.publish(Publication::Changes(vec![VhostUpdate::Remove(
        "a.tld".into(),
    )]));
    assert_eq!(served(&reader), ["a.tld / → c1"]);
    // Withdrawing what it never published changes nothing.
    let generation = reader.load().generation();
    swarm.publish(Publication::Changes(vec![VhostUpdate::Remove(
        "a.tld".into(),
    )]));
    assert_eq!(reader.load().generation(), generation);

    containers.publish(Publication::Changes(vec![VhostUpdate::Remove(
        "a.tld".into(),
    )]));
    assert!(served(&reader).is_empty());
}

#[test]
fn the_first_publication_is_served_even_empty_and_repeats_store_nothing() {
    let (publisher, registry) = publisher(Some(" B.tld "));
    let reader = publisher.reader();
    assert_eq!(reader.load().generation(), 0);
    let mut containers = publisher.provider(CONTAINERS);
    containers.publish(Publication::Full(Vec::new()));
    assert_eq!(
        reader.load().generation(),
        1,
        "ready means a table is served"
    );

    let b = vhost("b.tld", vec![path("/", vec![backend("c1", 1)])]);
    containers.publish(Publication::Full(vec![b.clone()]));
    containers.publish(Publication::Full(vec![b.clone()]));
    containers.publish(Publication::Changes(vec![VhostUpdate::Set(b)]));
    let table = reader.load();
    assert_eq!(
        table.generation(),
        2,
        "unchanged publications store nothing"
    );
    let (name, _) = table.https_vhost(Some("unknown.tld")).unwrap();
    assert_eq!(name, "b.tld", "DEFAULT_HOST is the publisher's, normalized");

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(text.contains("dockhand_route_table_generation 2"), "{text}");
    assert!(
        text.contains("dockhand_route_table_swaps_total 2"),
        "{text}"
    );
}
