use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Registers `count` connections, idle since `base + i` seconds (oldest first).
fn idle_connections(count: u64) -> (Connections, Vec<Entry>) {
    let connections = Connections::default();
    let base = Instant::now();
    let entries = (0..count)
        .map(|i| {
            let entry = connections.register();
            entry.state.set_since(base + Duration::from_secs(i));
            entry
        })
        .collect();
    (connections, entries)
}

fn evicted(entries: &[Entry]) -> Vec<usize> {
    (entries.iter().enumerate())
        .filter(|(_, e)| e.state.signal() == Signal::Evict)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn eviction_takes_the_longest_idle_first_an_eighth_at_most() {
    let (connections, entries) = idle_connections(40);
    assert_eq!(connections.evict_idle(), 5);
    assert_eq!(evicted(&entries), vec![0, 1, 2, 3, 4]);
    // Those already told are not counted again.
    assert_eq!(connections.evict_idle(), 4);
    assert_eq!(evicted(&entries), (0..9).collect::<Vec<_>>());
}

#[test]
fn eviction_takes_at_least_one_and_at_most_32() {
    let (connections, entries) = idle_connections(3);
    assert_eq!(connections.evict_idle(), 1);
    assert_eq!(evicted(&entries), vec![0]);
    let (connections, _entries) = idle_connections(1000);
    assert_eq!(connections.evict_idle(), MAX_EVICTED_AT_ONCE);
}

#[test]
fn busy_and_lingering_connections_are_never_evicted_and_heads_only_when_none_is_idle() {
    let (connections, entries) = idle_connections(4);
    let phase =
        |i: usize, phase: Phase| entries[i].state.phase.store(phase as u8, Ordering::Relaxed);
    phase(0, Phase::Busy);
    phase(1, Phase::Lingering);
    phase(2, Phase::Head);
    entries[2]
        .state
        .set_since(Instant::now() - Duration::from_secs(5));
    assert_eq!(connections.evict_idle(), 1);
    assert_eq!(
        evicted(&entries),
        vec![3],
        "the idle one, though the head is older"
    );
    assert_eq!(connections.evict_idle(), 1);
    assert_eq!(evicted(&entries), vec![2, 3], "then the slow head");
    assert_eq!(connections.evict_idle(), 0);
}

#[test]
fn a_head_under_a_second_old_is_not_evicted() {
    let connections = Connections::default();
    let entry = connections.register();
    entry
        .state
        .phase
        .store(Phase::Head as u8, Ordering::Relaxed);
    entry.state.set_since(Instant::now());
    assert_eq!(connections.evict_idle(), 0);
    assert_eq!(Connections::default().evict_idle(), 0);
}

#[test]
fn a_drain_is_not_downgraded_by_an_eviction() {
    let (connections, entries) = idle_connections(1);
    entries[0].state.send(Signal::Drain);
    entries[0].state.send(Signal::Evict);
    assert_eq!(entries[0].state.signal(), Signal::Drain);
    assert_eq!(connections.evict_idle(), 0);
}

#[test]
fn leaving_the_registry_removes_the_connection() {
    let (connections, mut entries) = idle_connections(3);
    assert_eq!(connections.len(), 3);
    entries.pop();
    assert_eq!(connections.len(), 2);
}

#[test]
fn requests_are_counted_until_their_mark_drops() {
    let state = Arc::new(ConnState::default());
    let first = state.begin(false);
    let second = state.begin(false);
    assert_eq!(
        (state.active(), state.requests.load(Ordering::Relaxed)),
        (2, 2)
    );
    drop(first);
    drop(second);
    assert_eq!(
        (state.active(), state.requests.load(Ordering::Relaxed)),
        (0, 2)
    );
}

#[tokio::test]
async fn reads_are_counted() {
    let (mut client, server) = tokio::io::duplex(1024);
    let state = Arc::new(ConnState::default());
    let mut io = GuardedIo::new(server, state.clone(), None);
    let mut buf = [0u8; 64];
    for chunk in [&b"GET / HTTP/1.1\r\n"[..], b"Host: a\r\n"] {
        client.write_all(chunk).await.unwrap();
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], chunk);
    }
    assert_eq!(state.read.load(Ordering::Relaxed), 25);
}

#[tokio::test]
async fn writes_are_counted_and_a_full_peer_marks_the_stream_blocked() {
    let (_client, server) = tokio::io::duplex(8);
    let state = Arc::new(ConnState::default());
    let mut io = GuardedIo::new(server, state.clone(), None);
    io.write_all(b"12345678").await.unwrap();
    assert_eq!(state.written.load(Ordering::Relaxed), 8);
    assert!(!state.write_blocked());
    let blocked = tokio::time::timeout(Duration::from_millis(50), io.write_all(b"9")).await;
    assert!(blocked.is_err());
    assert!(state.write_blocked());
}
