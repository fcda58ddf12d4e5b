//! The connection layer under hostile clients, over real sockets: connections that send
//! nothing, half a request or half a body are closed at their timeouts; idle keep-alive
//! connections too; a crowd of slow clients does not slow the others; a storm from one
//! address is capped, `/healthz` answers throughout and memory comes back; an upgraded
//! WebSocket holds a connection slot until it closes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use flash_edge::settings::EdgeSettings;
use flash_servers::process::{Server, Supervision};
use flash_tests::{Stack, StackOptions, flash_binary, free_port};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{browser, get};

/// Slack for the edge's timers on a loaded 2-core machine: a connection must be closed
/// within its timeout plus this.
const SLACK: Duration = Duration::from_secs(3);

async fn stack_with(change: impl FnOnce(&mut EdgeSettings) + Send + 'static) -> Stack {
    Stack::start(StackOptions {
        edge: Box::new(change),
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts")
}

/// A TCP connection to `address` from the loopback address `source` (all of 127/8 is this
/// machine), so a test can play several clients.
async fn connect_from(source: Ipv4Addr, address: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(address).await
}

/// Reads until the edge closes the connection (or resets it); what it sent and when it
/// closed, or `None` if it was still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Vec<u8>, Instant)> {
    let mut received = Vec::new();
    let read_all = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(limit, read_all).await.ok()?;
    Some((received, closed))
}

/// Reads one HTTP response (head and a `Content-Length` body) from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.expect("the edge answers");
        assert!(n > 0, "closed before a whole response");
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let header = Duration::from_secs(1);
    let stack = stack_with(move |settings| {
        settings.connections.header_timeout_ms = 1_000;
    })
    .await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(stack.address).await.unwrap();
    let (sent, closed) = read_until_closed(&mut silent, header + SLACK)
        .await
        .expect("closed within the header timeout");
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    assert!(
        closed - opened >= header,
        "closed early: {:?}",
        closed - opened
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_request_line_or_half_the_headers_are_closed_at_the_header_timeout() {
    let header = Duration::from_secs(1);
    let stack = stack_with(move |settings| {
        settings.connections.header_timeout_ms = 1_000;
    })
    .await;
    for half in [
        "GET /sa",
        "GET /sale HTTP/1.1\r\nHost: shop\r\nAccept: appl",
    ] {
        let opened = Instant::now();
        let mut client = TcpStream::connect(stack.address).await.unwrap();
        client.write_all(half.as_bytes()).await.unwrap();
        let (_, closed) = read_until_closed(&mut client, header + SLACK)
            .await
            .unwrap_or_else(|| panic!("{half:?} still open"));
        assert!(closed - opened >= header, "{half:?} closed early");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_body_gets_408_and_a_close_at_the_body_timeout() {
    let body = Duration::from_secs(1);
    let stack = stack_with(move |settings| {
        settings.connections.body_timeout_ms = 1_000;
    })
    .await;
    let mut client = TcpStream::connect(stack.address).await.unwrap();
    let sent_head = Instant::now();
    client
        .write_all(
            b"POST /session HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    let (reply, closed) = read_until_closed(&mut client, body + SLACK)
        .await
        .expect("closed within the body timeout");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains(r#""error":"REQUEST_TIMEOUT""#), "{reply}");
    assert!(closed - sent_head >= body, "closed early");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let idle = Duration::from_secs(1);
    // A header timeout far longer than the idle one: the close must be the idle timeout's.
    let header = Duration::from_secs(20);
    let stack = stack_with(move |settings| {
        settings.connections.idle_timeout_ms = 1_000;
        settings.connections.header_timeout_ms = 20_000;
    })
    .await;
    let mut client = TcpStream::connect(stack.address).await.unwrap();
    // Two requests on one connection: it is kept alive between them.
    let mut asked = Instant::now();
    for _ in 0..2 {
        asked = Instant::now();
        client
            .write_all(b"GET /sale HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        let reply = read_response(&mut client).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    let (extra, closed) = read_until_closed(&mut client, idle + SLACK)
        .await
        .expect("closed within the idle timeout");
    assert!(extra.is_empty());
    // The idle time runs from the reply, which came after the request was sent.
    assert!(closed - asked >= idle, "closed early");
    assert!(closed - asked < header);
}

/// 300 clients dribble header lines (one every 200 ms) while a normal client keeps asking
/// for the sale: the normal client's p99 stays under 50 ms, and every dribbler is cut at the
/// header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_at_the_header_timeout_while_others_are_served() {
    let header = Duration::from_secs(2);
    let stack = stack_with(move |settings| {
        settings.connections.header_timeout_ms = 2_000;
        // 300 slow clients from one address: this test is about timeouts, not the cap.
        settings.connections.connections_per_ip = 1_000;
    })
    .await;
    let address = stack.address;
    let dribblers: Vec<_> = (0..300)
        .map(|_| {
            tokio::spawn(async move {
                let opened = Instant::now();
                let client = connect_from(Ipv4Addr::new(127, 0, 0, 3), address)
                    .await
                    .expect("connected");
                let (mut reader, mut writer) = client.into_split();
                let dribble = async {
                    let _ = writer.write_all(b"GET /sale HTTP/1.1\r\n").await;
                    loop {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if writer.write_all(b"X-Slow: 1\r\n").await.is_err() {
                            // Written into a closed connection: wait for the reader's EOF.
                            std::future::pending::<()>().await;
                        }
                    }
                };
                let closed = async {
                    let mut buffer = [0u8; 1024];
                    // The first read ends it: data (a refusal), the close, or a reset.
                    match reader.read(&mut buffer).await {
                        Ok(0) => "the edge's close".to_owned(),
                        Ok(n) => String::from_utf8_lossy(&buffer[..n]).into_owned(),
                        Err(error) => error.to_string(),
                    }
                };
                let open_for = tokio::time::timeout(header + SLACK, async {
                    tokio::select! {
                        () = dribble => unreachable!(),
                        how = closed => (opened.elapsed(), how),
                    }
                })
                .await;
                open_for.ok()
            })
        })
        .collect();
    // The normal client, meanwhile: one keep-alive connection, request after request.
    let buyer = browser(&stack);
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let started = Instant::now();
        let reply = get(&buyer, "/sale").await;
        latencies.push(started.elapsed());
        assert_eq!(reply.status.as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "normal client: {} requests, p50 {:?}, p99 {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        p99
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    for dribbler in dribblers {
        let open_for = dribbler
            .await
            .unwrap()
            .expect("cut within the header timeout");
        let (open_for, how) = open_for;
        assert!(open_for >= header, "cut early: {open_for:?} by {how}");
    }
}

/// The resident memory of a process, in bytes (Linux: `/proc/<pid>/status`).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

/// `flash edge` as a child process against the stack's servers (its memory is its own, not
/// shared with the test's clients), with these extra flags; its log in `log`.
async fn edge_process(stack: &Stack, log: &Path, flags: &[&str]) -> (Server, SocketAddr) {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let mut command = Command::new(flash_binary());
    command
        .current_dir(log.parent().unwrap())
        .env("RUST_LOG", "info,tokio_postgres=warn")
        .arg("edge")
        .args(["--listen", &address.to_string()])
        .args(["--redis-url", &stack.redis.url()])
        .args(["--database-url", &stack.database_url])
        .args(["--sale", &stack.sale])
        .args(["--secret", "a test secret that is long enough to sign"])
        .args([
            "--rate-per-ip",
            "0",
            "--rate-per-user",
            "0",
            "--no-worker",
            "--demo-login",
        ])
        .args(flags);
    let mut edge = Server::spawn(
        "flash edge",
        command,
        log,
        libc::SIGTERM,
        Supervision::Attached,
    )
    .expect("flash edge starts");
    let client = flash_api_client::EdgeClient::new(&format!("http://{address}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            edge.try_exited().unwrap().is_none(),
            "flash edge exited:\n{}",
            edge.log_tail(30)
        );
        if client.health().await.is_ok_and(|(status, _)| status == 200) {
            return (edge, address);
        }
        assert!(
            Instant::now() < deadline,
            "no /healthz:\n{}",
            edge.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 3,000 connections from one address, each holding 12 KiB of headers that never end,
/// against a cap of 2,000 per address: 2,000 are held, the rest refused; `/healthz` (from
/// another address) answers all along; once the storm's clients close, the edge's resident
/// memory is back within 50 MB of what it was before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_storm_from_one_address_is_capped_and_its_memory_returns() {
    let cap = 2_000;
    let storm = 3_000;
    let stack = stack_with(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("edge.log");
    let (edge, address) = edge_process(
        &stack,
        &log,
        &[
            "--connections-per-ip",
            &cap.to_string(),
            "--max-connections",
            "10000",
            "--header-timeout-ms",
            "120000",
        ],
    )
    .await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("open-file limit"), "{logged}");
    // A few requests first, so that what every connection's first request allocates once is
    // in the "before".
    let health = flash_api_client::EdgeClient::new(&format!("http://{address}")).unwrap();
    for _ in 0..20 {
        health.health().await.unwrap();
    }
    let before = rss_bytes(edge.pid);

    // /healthz from 127.0.0.1 every 100 ms on a new connection, each answered within 5 s.
    let (stop_probe, mut probe_stopped) = tokio::sync::watch::channel(false);
    let probe = tokio::spawn(async move {
        let mut answered = 0;
        while !*probe_stopped.borrow() {
            let client = flash_api_client::EdgeClient::new(&format!("http://{address}")).unwrap();
            let reply = tokio::time::timeout(Duration::from_secs(5), client.health()).await;
            match reply {
                Ok(Ok((status, _))) if status == 200 => answered += 1,
                other => return Err(format!("/healthz during the storm: {other:?}")),
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), probe_stopped.changed()).await;
        }
        Ok(answered)
    });

    let mut head = b"GET / HTTP/1.1\r\nHost: shop\r\nX-Pad: ".to_vec();
    head.resize(head.len() + 12 * 1024, b'a');
    let mut clients = Vec::with_capacity(storm);
    for _ in 0..storm {
        let mut client = connect_from(Ipv4Addr::new(127, 0, 0, 2), address)
            .await
            .expect("connected");
        // A refused connection may be closed before this lands: that is fine.
        let _ = client.write_all(&head).await;
        clients.push(client);
    }
    // Let the edge take every connection in and refuse those over the cap.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut held = 0;
    let mut refusals = Vec::new();
    for client in &mut clients {
        let mut buffer = [0u8; 512];
        match client.try_read(&mut buffer) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => held += 1,
            Ok(n) if n > 0 => refusals.push(String::from_utf8_lossy(&buffer[..n]).into_owned()),
            _ => refusals.push(String::new()),
        }
    }
    let during = rss_bytes(edge.pid);
    assert_eq!(held, cap, "connections held from one address");
    assert_eq!(refusals.len(), storm - cap);
    // The refusal says why, when it reaches the client before the close does.
    for refusal in refusals.iter().filter(|refusal| !refusal.is_empty()) {
        assert!(refusal.starts_with("HTTP/1.1 429"), "{refusal}");
        assert!(refusal.contains("RATE_LIMITED"), "{refusal}");
    }

    drop(clients);
    // The edge sees the closes: new connections from that address are welcome again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut client = connect_from(Ipv4Addr::new(127, 0, 0, 2), address)
            .await
            .unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (reply, _) = read_until_closed(&mut client, Duration::from_secs(5))
            .await
            .expect("answered");
        if reply.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after the storm");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The edge looks at its connections every second and gives memory back once a crowd
    // has gone: wait for it (a bound, not a speed).
    let bound = before + 50 * (1 << 20);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = rss_bytes(edge.pid);
    while after >= bound && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = rss_bytes(edge.pid);
    }
    let _ = stop_probe.send(true);
    let answered = probe.await.unwrap().unwrap();
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    eprintln!(
        "edge RSS: before {:.1} MiB, during {:.1} MiB, after {:.1} MiB; /healthz answered {answered} times",
        mib(before),
        mib(during),
        mib(after)
    );
    assert!(answered >= 5, "/healthz answered {answered} times");
    // The storm did hold memory (else the last check would prove nothing).
    assert!(during > before + 20 * (1 << 20), "the storm held little");
    assert!(
        after < bound,
        "RSS after the storm {:.1} MiB, before {:.1} MiB",
        mib(after),
        mib(before)
    );
}

/// With two connection slots, an open WebSocket and a keep-alive connection fill them: a
/// third connection waits until the WebSocket closes, then is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_websocket_holds_a_connection_slot_until_it_closes() {
    let stack = stack_with(|settings| settings.max_connections = 2).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/catalog", stack.address))
            .await
            .expect("the WebSocket opens");
    let mut keep_alive = TcpStream::connect(stack.address).await.unwrap();
    keep_alive
        .write_all(b"GET /sale HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_response(&mut keep_alive)
            .await
            .starts_with("HTTP/1.1 200")
    );

    let mut third = TcpStream::connect(stack.address).await.unwrap();
    third
        .write_all(b"GET /sale HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "served while the WebSocket held a slot: {early:?}"
    );

    socket.send(Message::Close(None)).await.unwrap();
    // Read to the end of the close handshake.
    while let Some(Ok(_)) = socket.next().await {}
    drop(socket);
    let reply = tokio::time::timeout(Duration::from_secs(10), read_response(&mut third))
        .await
        .expect("served once the WebSocket closed");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
