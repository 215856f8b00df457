//! dockhand as users run it: a container with the socket mounted, routing over shared networks.

use dockhand_testkit::assert_eventually;

use crate::lifecycle::backends_of;
use crate::support::*;

#[test]
fn in_a_container_only_shared_networks_are_routed_and_follow_connects() {
    require_docker!();
    let (shared_host, apart_host) = (unique("shared"), unique("apart"));
    let front = network().start();
    let apart = network().start();
    let proxy = dockhand().in_container(&front).start();

    let _shared = backend()
        .name("shared")
        .vhost(&shared_host)
        .network(&front)
        .start();
    let lonely = backend()
        .name("lonely")
        .vhost(&apart_host)
        .network(&apart)
        .start();

    proxy.wait_status(&shared_host, "/", 200);
    // Known host, but its only container is on a network dockhand is not attached to.
    proxy.wait_status(&apart_host, "/", 502);

    lonely.connect(&front);
    assert_eventually!(
        proxy.status(&apart_host, "/") == 200,
        PROPAGATION,
        "connect not seen"
    );
    assert_eq!(
        backends_of(&proxy, &apart_host),
        1,
        "one address per container"
    );

    lonely.disconnect(&front);
    // Judged on the table: a request racing the event would wait on the vanished address.
    assert_eventually!(
        backends_of(&proxy, &apart_host) == 0,
        PROPAGATION,
        "disconnect not seen"
    );
    assert_eq!(proxy.status(&apart_host, "/"), 502);

    // dockhand joining the other network makes it reachable too.
    proxy.container().connect(&apart);
    assert_eventually!(
        proxy.status(&apart_host, "/") == 200,
        PROPAGATION,
        "own connect not seen"
    );
}
