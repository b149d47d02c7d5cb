//! System test over IPv6: the real server listening on `::1` only, two real stations joining
//! with `wss://[::1]:…` and A's audio reaching B through the server's IPv6 media socket.
//!
//! It runs in a network namespace of its own (`unshare --net`, with a user namespace so no
//! root is needed), where `::1` belongs to the test alone: the outer test re-runs this test
//! binary inside one, and the inner test brings its loopback up and plays the scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;
use std::time::Duration;

use common::{Stage, a_talks_and_b_hears, quit_all, stats, wait_until, write_speech};

const IN_NAMESPACE: &str = "STAGEBOX_TEST_IN_OWN_NETNS";

#[test]
fn stations_talk_over_ipv6_in_their_own_network_namespace() {
    common::rerun_in_namespaces(&["--net"], "ipv6_scenario", IN_NAMESPACE);
}

#[test]
#[ignore = "run by stations_talk_over_ipv6_in_their_own_network_namespace inside its namespace"]
fn ipv6_scenario() {
    assert!(
        std::env::var_os(IN_NAMESPACE).is_some(),
        "run through stations_talk_over_ipv6_in_their_own_network_namespace"
    );
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2)");
    assert!(up.success(), "bringing the namespace's loopback up failed");

    let stage = Stage::new("system-ipv6", IpAddr::V6(Ipv6Addr::LOCALHOST));
    let speech = stage.dir.join("speech.wav");
    write_speech(&speech);
    let _server = stage.start_server("server.log");
    let pin = stage.pin();
    let stations = vec![
        stage.start_station("a", &pin, Some(&speech)),
        stage.start_station("b", &pin, Some(&speech)),
    ];
    let (sa, sb) = (stations[0].1.clone(), stations[1].1.clone());
    wait_until(
        "both stations to join over IPv6",
        Duration::from_secs(20),
        || {
            stage.all_connected(2)
                && sa.exists()
                && sb.exists()
                && stats(&sa)["led"] == "audience"
                && stats(&sb)["led"] == "audience"
        },
    );
    a_talks_and_b_hears(&stage, &sa, &sb);
    let log = std::fs::read_to_string(stage.dir.join("b.log")).unwrap();
    assert!(log.contains("media session: [::1]:"), "{log}");
    quit_all(stations);
}
