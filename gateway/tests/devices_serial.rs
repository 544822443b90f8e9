//! Serial plumbing: raw pty pairs carry every byte value unchanged, a closed
//! master is seen as a disconnect, and the reopen loop backs off (paused
//! tokio time) instead of spinning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use madoguchi_gateway::serial::{
    Backoff, BoxTransport, Connector, PortConfig, connect_with_backoff, is_disconnect, open,
    pty_pair, pty_path,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn pty_pair_is_raw_both_ways() {
    let (mut master, mut slave) = pty_pair().unwrap();
    let all: Vec<u8> = (0..=255u8).collect();
    master.write_all(&all).await.unwrap();
    let mut got = vec![0u8; all.len()];
    tokio::time::timeout(Duration::from_secs(5), slave.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, all, "master → slave mangled");
    slave.write_all(&all).await.unwrap();
    let mut got = vec![0u8; all.len()];
    tokio::time::timeout(Duration::from_secs(5), master.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, all, "slave → master mangled (LF→CRLF or echo?)");
}

#[tokio::test]
async fn slave_path_opens_raw_through_port_config() {
    let (mut master, slave) = pty_pair().unwrap();
    let path = pty_path(&slave).expect("pty slave has a path");
    let mut port = open(&PortConfig::new(path, 9600)).unwrap();
    let bytes = [0x0A, 0x0D, 0x03, 0x04, 0x11, 0x13, 0x1A, 0x7F, 0xFF];
    port.write_all(&bytes).await.unwrap();
    let mut got = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), master.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, bytes);
}

#[tokio::test]
async fn closed_master_reads_as_disconnect() {
    let (master, mut slave) = pty_pair().unwrap();
    drop(master);
    let mut buf = [0u8; 8];
    let outcome = tokio::time::timeout(Duration::from_secs(5), slave.read(&mut buf))
        .await
        .unwrap();
    match outcome {
        Ok(0) => {}
        Ok(n) => panic!("read {n} bytes from a closed pty"),
        Err(e) => assert!(is_disconnect(&e), "{e:?} not classified as disconnect"),
    }
}

#[test]
fn backoff_grows_with_jitter_and_caps() {
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
    for (i, d) in delays.iter().enumerate() {
        let step = Duration::from_millis(100)
            .saturating_mul(1 << i)
            .min(Duration::from_secs(2));
        assert!(
            *d >= step / 2 && *d <= step,
            "attempt {i}: {d:?} outside [{:?}, {step:?}]",
            step / 2
        );
    }
    b.reset();
    assert!(b.next_delay() <= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn reopen_loop_backs_off_without_spinning() {
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let mut connector = Connector::from_fn("flaky", move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n < 5 {
                Err(io::Error::from_raw_os_error(5))
            } else {
                let (a, _b) = tokio::io::duplex(8);
                Ok(Box::new(a) as BoxTransport)
            }
        })
    });
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    let mut errors = 0;
    let start = tokio::time::Instant::now();
    let _t = connect_with_backoff(&mut connector, &mut backoff, |e| {
        assert!(is_disconnect(e));
        errors += 1;
    })
    .await;
    assert_eq!(errors, 5);
    assert_eq!(attempts.load(Ordering::SeqCst), 6);
    // Five failures wait at least half of 100+200+400+800+1600 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(1550),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(backoff.attempts(), 0, "reset after success");
}

#[tokio::test(start_paused = true)]
async fn missing_device_path_is_retried_with_backoff() {
    let mut connector = Connector::serial(PortConfig::new("/dev/madoguchi-does-not-exist", 9600));
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let mut errors = 0u32;
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        connect_with_backoff(&mut connector, &mut backoff, |_| errors += 1),
    )
    .await;
    assert!(outcome.is_err(), "a missing port never opens");
    // 10 s of virtual time at ≥ 0.5 s per attempt once capped: bounded.
    assert!((5..=25).contains(&errors), "{errors} attempts in 10 s");
}
