//! The edge under hostile clients (issue 13): cross-site writes, health checks used as a
//! hammer, probing other users' carts, bodies and queries that mean two things, usernames
//! in another case, reused tokens after sign-out, and HTTP/1.1's own rules. Requests the
//! typed client would never send go as raw bytes over TCP.

use std::time::Duration;

use clap::Parser;
use flash_api_client::{Buy, EdgeClient, LineChange, Method, StatusCode};
use flash_client::ErrorCode;
use flash_edge::settings::EdgeSettings;
use flash_tests::{Stack, StackOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{assert_error, browser, get, post_json, post_raw, signed_in};

async fn stack() -> Stack {
    Stack::start(StackOptions::default())
        .await
        .expect("the stack starts")
}

/// One reply read off a raw connection: status, head (lower-cased), body.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends `request` (a whole HTTP/1.x request, `Connection: close` added for 1.1) as is and
/// reads everything the edge sends back.
async fn raw_bytes(stack: &Stack, request: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(stack.address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("the edge answers and closes")
        .unwrap();
    reply
}

/// One request: `method path`, these header lines, this body.
async fn raw(stack: &Stack, method: &str, path: &str, headers: &[String], body: &str) -> Raw {
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for line in headers {
        request.push_str(line);
        request.push_str("\r\n");
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    parse(&raw_bytes(stack, &request).await)
}

fn parse(reply: &[u8]) -> Raw {
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(reply)));
    let head = String::from_utf8_lossy(&reply[..split]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    Raw {
        status,
        head,
        body: reply[split + 4..].to_vec(),
    }
}

fn host(stack: &Stack) -> String {
    format!("Host: {}", stack.address)
}

/// Signs `username` in with raw bytes: the session cookie's header line and the token (as
/// the reply's body gives it; the cookie line is lower-cased, the token keeps its case).
async fn sign_in_raw(stack: &Stack, username: &str) -> (String, String) {
    let body = json!({ "username": username }).to_string();
    let reply = raw(
        stack,
        "POST",
        "/session",
        &[host(stack), "Content-Type: application/json".into()],
        &body,
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    (format!("Cookie: flash_session={token}"), token)
}

/// Units of product `sku`: (available, held, pending + sold).
async fn units(stack: &Stack, sku: i64) -> (i64, i64, i64) {
    let info = stack
        .engine()
        .await
        .unwrap()
        .info(&stack.sale)
        .await
        .unwrap();
    let (_, u) = info.skus.iter().find(|(s, _)| *s == sku).unwrap();
    assert!(u.is_conserved(), "{u:?}");
    (u.available, u.held, u.pending + u.sold)
}

/// Rows in the users table.
async fn user_rows(stack: &Stack) -> i64 {
    let database = stack.database().await.unwrap();
    let row = database
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap();
    row.get(0)
}

async fn cart_exists(stack: &Stack, cart: &str) -> bool {
    match stack.engine().await.unwrap().cart(&stack.sale, cart).await {
        Ok(_) => true,
        Err(error) if error.code() == Some(ErrorCode::NoCart) => false,
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_with_the_cookie_are_refused_and_change_nothing() {
    let stack = stack().await;
    let (cookie, token) = sign_in_raw(&stack, "alice").await;
    let evil = "Origin: https://evil.example".to_owned();
    let add = r#"{"product_id": 1, "cart_id": "csrf-1"}"#;
    // A form on another site posting as the visitor: every content type a form can send,
    // and JSON too (which would need a preflight we never grant, and still is refused).
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json",
    ] {
        let headers = [
            host(&stack),
            cookie.clone(),
            evil.clone(),
            format!("Content-Type: {content_type}"),
        ];
        for (path, body) in [
            ("/cart/add", add),
            ("/cart/checkout", r#"{"cart_id": "csrf-1"}"#),
            ("/orders/", r#"{"product_id": 2, "order_id": "csrf-2"}"#),
        ] {
            let reply = raw(&stack, "POST", path, &headers, body).await;
            assert_eq!(
                (reply.status, reply.code()),
                (403, "FORBIDDEN".into()),
                "{path}"
            );
        }
    }
    // A browser that says it is cross-site without an Origin; an opaque `Origin: null`.
    for marker in ["Sec-Fetch-Site: cross-site", "Origin: null"] {
        let headers = [
            host(&stack),
            cookie.clone(),
            marker.to_owned(),
            "Content-Type: application/json".to_owned(),
        ];
        let reply = raw(&stack, "POST", "/cart/add", &headers, add).await;
        assert_eq!(reply.status, 403, "{marker}");
    }
    // Login CSRF: another site signing the visitor in as the attacker sets no cookie.
    let login = raw(
        &stack,
        "POST",
        "/session",
        &[
            host(&stack),
            evil.clone(),
            "Content-Type: text/plain".into(),
        ],
        r#"{"username": "mallory"}"#,
    )
    .await;
    assert_eq!(login.status, 403);
    assert!(!login.head.contains("set-cookie"), "{}", login.head);
    // Nothing moved, nobody was made.
    assert_eq!(units(&stack, 1).await, (5, 0, 0));
    assert_eq!(units(&stack, 2).await, (3, 0, 0));
    assert!(!cart_exists(&stack, "csrf-1").await);
    assert!(!cart_exists(&stack, "csrf-2").await);
    assert_eq!(user_rows(&stack).await, 1);

    // Our own pages: the same host, or Sec-Fetch-Site: same-origin; with JSON only.
    let own = format!("Origin: http://{}", stack.address);
    let json_type = "Content-Type: application/json".to_owned();
    let headers = [host(&stack), cookie.clone(), own.clone(), json_type.clone()];
    assert_eq!(
        raw(&stack, "POST", "/cart/add", &headers, add).await.status,
        200
    );
    let same_origin = "Sec-Fetch-Site: same-origin".to_owned();
    let headers = [host(&stack), cookie.clone(), same_origin, json_type.clone()];
    assert_eq!(
        raw(&stack, "POST", "/cart/add", &headers, add).await.status,
        200
    );
    let form = [
        host(&stack),
        cookie.clone(),
        own,
        "Content-Type: text/plain".into(),
    ];
    let reply = raw(&stack, "POST", "/cart/add", &form, add).await;
    assert_eq!(
        (reply.status, reply.code()),
        (415, "UNSUPPORTED_MEDIA_TYPE".into())
    );
    // A program with the cookie and no Origin is no other site's page: JSON passes.
    let program = [host(&stack), cookie.clone(), json_type];
    assert_eq!(
        raw(&stack, "POST", "/cart/add", &program, add).await.status,
        200
    );
    // A bearer token is never sent by a browser on its own: not checked.
    let bearer = [
        host(&stack),
        format!("Authorization: Bearer {token}"),
        evil,
        "Content-Type: text/plain".into(),
    ];
    assert_eq!(
        raw(&stack, "POST", "/cart/add", &bearer, add).await.status,
        200
    );
    // Four adds of one unit went through.
    assert_eq!(units(&stack, 1).await, (1, 4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_spend_no_allowance_and_reach_the_backends_once_a_second() {
    let stack = Stack::start(StackOptions {
        edge: Box::new(|settings| settings.rate_per_ip = 100),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let pings = || async {
        let mut conn = stack.engine().await.unwrap().connection();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse::<u64>().unwrap())
    };
    let before = pings().await;
    let started = std::time::Instant::now();
    // 300 pipelined, past the per-IP burst of 200.
    let one = format!("GET /healthz HTTP/1.1\r\n{}\r\n\r\n", host(&stack));
    let last = format!(
        "GET /healthz HTTP/1.1\r\n{}\r\nConnection: close\r\n\r\n",
        host(&stack)
    );
    let replies = raw_bytes(&stack, &(one.repeat(299) + &last)).await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&replies);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 300, "{text:.400}");
    let after = pings().await;
    // The background probe's PINGs only: one a second (and one more for a tick in flight),
    // never one per request.
    let probes = after - before;
    println!("300 pipelined /healthz in {elapsed:?}: {probes} PINGs reached Redis");
    assert!(
        probes <= elapsed.as_secs() + 2,
        "{probes} PINGs for 300 health checks in {elapsed:?}"
    );
    // The shopper's allowance is whole.
    let sale = raw(&stack, "GET", "/sale", &[host(&stack)], "").await;
    assert_eq!(sale.status, 200, "{}", String::from_utf8_lossy(&sale.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_cart_or_order_is_404_like_a_missing_one_and_stays_untouched() {
    let stack = stack().await;
    let alice = signed_in(&stack, "alice").await;
    let cart = "alice-cart";
    alice
        .cart_add(&LineChange {
            product_id: 1,
            cart_id: cart,
            qty: Some(2),
        })
        .await
        .unwrap();
    let order = Buy {
        product_id: 2,
        qty: None,
        order_id: Some("alice-order"),
    };
    alice.buy(&order).await.unwrap();
    let before = (units(&stack, 1).await, units(&stack, 2).await);

    let bob = signed_in(&stack, "bob").await;
    // What a missing cart reads as, on each kind of route.
    let missing = [
        post_json(&bob, "/cart/checkout", json!({"cart_id": "no-such"})).await,
        post_json(
            &bob,
            "/cart/remove",
            json!({"product_id": 1, "cart_id": "no-such"}),
        )
        .await,
        get(&bob, "/cart/no-such").await,
        get(&bob, "/orders/no-such").await,
    ];
    let reference = (missing[0].status, missing[0].text());
    for reply in &missing {
        assert_error(reply, 404, "NOCART");
        assert_eq!((reply.status, reply.text()), reference);
    }
    // Alice's, on every route: the same bytes.
    for (what, reply) in [
        (
            "add",
            post_json(&bob, "/cart/add", json!({"product_id": 1, "cart_id": cart})).await,
        ),
        (
            "remove",
            post_json(
                &bob,
                "/cart/remove",
                json!({"product_id": 1, "cart_id": cart}),
            )
            .await,
        ),
        (
            "checkout",
            post_json(&bob, "/cart/checkout", json!({"cart_id": cart})).await,
        ),
        (
            "buy into her cart",
            post_json(&bob, "/orders/", json!({"product_id": 1, "order_id": cart})).await,
        ),
        (
            "buy her order",
            post_json(
                &bob,
                "/orders/",
                json!({"product_id": 2, "order_id": "alice-order"}),
            )
            .await,
        ),
        ("read the cart", get(&bob, &format!("/cart/{cart}")).await),
        ("read the order", get(&bob, "/orders/alice-order").await),
        (
            "read her cart as an order",
            get(&bob, &format!("/orders/{cart}")).await,
        ),
    ] {
        assert_eq!((reply.status, reply.text()), reference, "{what}");
    }
    // Nothing changed: her cart, the stock, and Bob holds nothing.
    let view = alice.cart(cart).await.unwrap();
    assert_eq!((view.units, view.lines.len()), (2, 1));
    assert_eq!((units(&stack, 1).await, units(&stack, 2).await), before);
    assert_eq!(before.0, (3, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_is_one_json_object_with_nothing_after_it() {
    let stack = stack().await;
    let alice = signed_in(&stack, "alice").await;
    for body in [
        r#"{"product_id": 1, "cart_id": "k1"} xyz"#,
        r#"{"product_id": 1, "cart_id": "k1"}{"product_id": 2}"#,
        r#"[1, "k2", 1, null]"#,
    ] {
        let reply = post_raw(&alice, "/cart/add", body.as_bytes().to_vec()).await;
        assert_error(&reply, 422, "INVALID");
    }
    let sign_in = post_raw(&browser(&stack), "/session", br#"["mallory"]"#.to_vec()).await;
    assert_error(&sign_in, 422, "INVALID");
    assert!(!cart_exists(&stack, "k1").await);
    assert!(!cart_exists(&stack, "k2").await);
    assert_eq!(units(&stack, 1).await, (5, 0, 0));
    // Whitespace around the one object is fine.
    let spaced = post_raw(
        &alice,
        "/cart/add",
        b" \n{\"product_id\": 1, \"cart_id\": \"k3\"}\r\n ".to_vec(),
    )
    .await;
    assert_eq!(spaced.status, StatusCode::OK, "{}", spaced.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_percent_decoded_and_skip_is_bounded() {
    let stack = stack().await;
    let buyer = browser(&stack);
    for query in [
        "skip=18446744073709551615&limit=1",
        "skip=1000001",
        "skip=1&skip=2",
        "limit=%2D1",
    ] {
        let reply = get(&buyer, &format!("/products/?{query}")).await;
        assert_error(&reply, 422, "INVALID");
    }
    let page: Value = get(&buyer, "/products/?skip=%31&limit=%31")
        .await
        .json()
        .unwrap();
    assert_eq!(
        (&page["skip"], &page["limit"], &page["page"]),
        (&json!(1), &json!(1), &json!(2))
    );
    assert_eq!(page["items"][0]["id"], 2);
    // The bound itself is a page, an empty one.
    let far: Value = get(&buyer, "/products/?skip=1000000&limit=60")
        .await
        .json()
        .unwrap();
    assert_eq!(far["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_is_one_account_in_any_case_and_signing_in_again_burns_no_id() {
    let stack = stack().await;
    let anyone = browser(&stack);
    let first = anyone.sign_in("Alice").await.unwrap().user;
    assert_eq!(first.username, "Alice");
    for again in ["alice", "ALICE", "Alice", "aLiCe"] {
        let user = anyone.sign_in(again).await.unwrap().user;
        assert_eq!(
            (user.id, user.username.as_str()),
            (first.id, "Alice"),
            "{again}"
        );
        assert_eq!(anyone.whoami().await.unwrap().username, "Alice");
    }
    // The next new user takes the very next id: none was burnt by the repeats.
    let bob = anyone.sign_in("bob").await.unwrap().user;
    assert_eq!(bob.id, first.id + 1);
    assert_eq!(user_rows(&stack).await, 2);
}

/// Another edge on the same Redis and PostgreSQL, with the same secret (and no worker).
async fn second_edge(stack: &Stack) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        edge: EdgeSettings,
    }
    let args = Args::try_parse_from([
        "edge",
        "--listen=127.0.0.1:0",
        &format!("--redis-url={}", stack.redis.url()),
        &format!("--database-url={}", stack.database_url),
        &format!("--sale={}", stack.sale),
        "--secret=a test secret that is long enough to sign",
        "--no-worker",
        "--demo-login",
        "--rate-per-ip=0",
        "--rate-per-user=0",
    ])
    .unwrap();
    let (ready, address) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(flash_edge::server::run(
        args.edge,
        move |bound| {
            let _ = ready.send(bound);
        },
        async {
            let _ = stopped.await;
        },
    ));
    let address = tokio::time::timeout(Duration::from_secs(20), address)
        .await
        .unwrap()
        .unwrap();
    (address, stop)
}

fn bearer(address: std::net::SocketAddr, token: &str) -> EdgeClient {
    EdgeClient::new(&format!("http://{address}"))
        .unwrap()
        .with_token(token)
        .unwrap()
}

/// Until the edge at `address` refuses `token` (another edge learns of a sign-out through
/// Redis, within moments).
async fn refused_soon(address: std::net::SocketAddr, token: &str) {
    let client = bearer(address, token);
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(10);
    loop {
        match client.whoami().await {
            Err(error) if error.code() == Some("UNAUTHENTICATED") => {
                println!(
                    "the other edge refused the token after {:?}",
                    started.elapsed()
                );
                return;
            }
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "still accepted: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_token_is_refused_by_every_edge_until_it_expires() {
    let stack = stack().await;
    // Signed out through the cookie: the token in the sign-in reply is dead too.
    let (cookie, first) = sign_in_raw(&stack, "alice").await;
    let out = raw(
        &stack,
        "DELETE",
        "/session",
        &[host(&stack), cookie.clone()],
        "",
    )
    .await;
    assert_eq!(out.status, 200);
    let replay = raw(&stack, "GET", "/session", &[host(&stack), cookie], "").await;
    assert_eq!(replay.status, 401);
    let api = bearer(stack.address, &first);
    assert_eq!(
        api.whoami().await.unwrap_err().code(),
        Some("UNAUTHENTICATED")
    );
    let add = LineChange::one(1, "after-sign-out");
    assert_eq!(
        api.cart_add(&add).await.unwrap_err().code(),
        Some("UNAUTHENTICATED")
    );
    assert!(!cart_exists(&stack, "after-sign-out").await);

    // An edge started afterwards refuses it from its first request.
    let (other, _stop) = second_edge(&stack).await;
    refused_soon(other, &first).await;
    assert_eq!(
        bearer(other, &first).whoami().await.unwrap_err().code(),
        Some("UNAUTHENTICATED")
    );
    // A token signed out on one edge, bearer-carried, is refused on the other: it learns it.
    let second = browser(&stack).sign_in("alice").await.unwrap().token;
    assert_eq!(
        bearer(other, &second).whoami().await.unwrap().username,
        "alice"
    );
    bearer(stack.address, &second).sign_out().await.unwrap();
    refused_soon(other, &second).await;
    // Signing in again gives a fresh, working token.
    let third = browser(&stack).sign_in("alice").await.unwrap().token;
    assert_eq!(
        bearer(other, &third).whoami().await.unwrap().username,
        "alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_basics_host_is_required_head_is_served_and_the_bearer_scheme_has_any_case() {
    let stack = stack().await;
    // HTTP/1.1 without Host, or with two: 400. HTTP/1.0 needs none.
    let no_host = raw(&stack, "GET", "/sale", &[], "").await;
    assert_eq!(
        (no_host.status, no_host.code()),
        (400, "BAD_REQUEST".into())
    );
    let two = [host(&stack), "Host: other.example".into()];
    assert_eq!(raw(&stack, "GET", "/sale", &two, "").await.status, 400);
    let old = parse(&raw_bytes(&stack, "GET /sale HTTP/1.0\r\n\r\n").await);
    assert_eq!(old.status, 200);
    // HEAD wherever GET is served: the head of the GET, no body.
    for (path, kind) in [
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/products/?limit=2", "application/json"),
        ("/healthz", "application/json"),
    ] {
        let head = raw(&stack, "HEAD", path, &[host(&stack)], "").await;
        assert_eq!(head.status, 200, "{path}");
        assert!(
            head.head.contains(&format!("content-type: {kind}")),
            "{path}: {}",
            head.head
        );
        assert!(head.body.is_empty(), "{path}");
    }
    assert_eq!(
        raw(&stack, "HEAD", "/nope", &[host(&stack)], "")
            .await
            .status,
        404
    );
    // `bearer` in lower case is the bearer token, not a cue to use the cookie instead.
    let (bob_cookie, _) = sign_in_raw(&stack, "bob").await;
    let (_, alice) = sign_in_raw(&stack, "alice").await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let headers = [
            host(&stack),
            bob_cookie.clone(),
            format!("Authorization: {scheme} {alice}"),
        ];
        let me = raw(&stack, "GET", "/session", &headers, "").await;
        assert_eq!(me.json()["user"]["username"], "alice", "{scheme}");
    }
    // The typed client still speaks plain HTTP/1.1.
    let reply = browser(&stack)
        .send(Method::GET, "/sale", None)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
}

/// `X-Forwarded-For` names the client only when the connection comes from a trusted proxy
/// (`--trusted-proxy`): then each forwarded client has its own allowance; from anyone else
/// the header is ignored, so spoofing it does not escape the per-address limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    // One request a second, a burst of two, per client.
    async fn statuses(stack: &Stack, clients: &[&str]) -> Vec<u16> {
        let mut statuses = Vec::new();
        for client in clients {
            let forwarded = format!("X-Forwarded-For: 203.0.113.50, {client}");
            let reply = raw(stack, "GET", "/sale", &[host(stack), forwarded], "").await;
            statuses.push(reply.status);
        }
        statuses
    }
    let spoofed = Stack::start(StackOptions {
        edge: Box::new(|settings| settings.rate_per_ip = 1),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let three = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    assert_eq!(
        statuses(&spoofed, &three).await,
        [200, 200, 429],
        "a header from an untrusted address is ignored: one client, over its burst"
    );

    let proxied = Stack::start(StackOptions {
        edge: Box::new(|settings| {
            settings.rate_per_ip = 1;
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        }),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(
        statuses(&proxied, &three).await,
        [200, 200, 200],
        "three clients behind the proxy, each within its burst"
    );
    let one = ["198.51.100.9"; 3];
    assert_eq!(
        statuses(&proxied, &one).await,
        [200, 200, 429],
        "one client behind the proxy has one allowance"
    );
}
