//! The whole app in process, built on port 0 against testkit's synthetic engine instead of
//! Docker: it binds first and says where, routes the engine's containers to a real backend,
//! follows the engine's events, and stops when its shutdown future completes.

mod in_process;

use dockhand_testkit::echo;
use in_process::{eventually, get, start, synthetic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_binds_port_zero_routes_the_engines_containers_and_stops_when_told() {
    let backend = echo::spawn(echo::Config {
        ports: vec![0],
        name: "in-process".to_owned(),
        ..echo::Config::default()
    })
    .expect("the echo backend starts");
    let engine = synthetic(backend.addr().port());
    engine.start(0);
    let app = start(&engine, &[]).await;
    let (http, admin) = (app.http, app.admin);
    assert_ne!(http.port(), 0, "building binds, and says where");

    let answers = |host: &'static str, expected: u16| {
        eventually(host, move || async move {
            get(http, host, "/").await.0 == expected
        })
    };
    eventually("/readyz 200", || async {
        get(admin, "admin", "/readyz").await.0 == 200
    })
    .await;
    answers("app0.scale.local", 200).await;
    assert_eq!(get(http, "unknown.invalid", "/").await.0, 503);
    engine.start(1);
    answers("app1.scale.local", 200).await;
    engine.remove(0);
    answers("app0.scale.local", 503).await;

    app.stop().await;
    assert_eq!(
        get(http, "app1.scale.local", "/").await.0,
        0,
        "still accepting"
    );
}
