//! `flash up` end to end, as a user runs it: the built `flash` program starts the whole
//! stack (redis-server with the module, its own PostgreSQL, the edge and its worker) in a
//! temp data folder on free ports; a buyer signs in and buys through the API; SIGINT (what
//! Ctrl-C sends) stops it with exit 0 and no server left behind; a second start on the same
//! folder finds the order, the catalog once, a session key that still verifies, and the books
//! balanced.
//!
//! Runs `$FLASH_BIN` (else target/debug/flash) with `$FLASH_MODULE`; `cargo xtask test` builds
//! both and sets them.

use std::fs;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use flash_api_client::{
    Buy, EdgeClient, OrderAccepted, OrderStatus, Product, ProductsPage, StatusCode,
};
use flash_tests::{flash_binary, free_cluster_ports, free_port, module_path};

/// initdb and a first checkpoint take a few seconds; a debug build starts slower.
const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_a_sale_stops_on_sigint_and_restarts_on_its_data() {
    let began = Instant::now();
    let data = tempfile::Builder::new()
        .prefix("flash-up-data-")
        .tempdir()
        .expect("a temp data folder");
    let logs = tempfile::Builder::new()
        .prefix("flash-up-logs-")
        .tempdir()
        .expect("a temp log folder");
    // First run: a fresh folder.
    let mut up = Up::start(data.path(), logs.path(), "first");
    let edge = up.wait_healthy().await;
    let out = up.stdout();
    assert!(
        out.contains(&format!("Flash is up: http://127.0.0.1:{}/", up.http_port)),
        "{out}"
    );
    assert!(out.contains("the demo catalog, added now"), "{out}");

    let (token, catalog_before, product, order) = up.buy_one(&edge, "smoke").await;
    let total = catalog_before.total;
    assert!(total >= 30, "a demo catalog of dozens: {catalog_before:?}");
    up.stop_with_sigint();

    // Second run: the same folder, other ports (the data does not depend on them).
    let mut up = Up::start(data.path(), logs.path(), "second");
    let edge = up.wait_healthy().await;
    let shopper = up.client().with_token(&token).expect("a token header");
    let out = up.stdout();
    assert!(
        out.contains("(append-only file, reused)") && out.contains("(reused)"),
        "{out}"
    );
    assert!(!out.contains("added now"), "{out}");

    // The same token: the session key was kept, and the order is still there.
    let stored = shopper.order(&order.order_id).await.expect("the order");
    assert_eq!(stored.status, OrderStatus::Confirmed, "{stored:?}");
    let catalog_after = edge.products(0, 60).await.expect("the catalog");
    assert_eq!(
        catalog_after.total, total,
        "the catalog is not added twice: {catalog_after:?}"
    );
    let available_after = catalog_after
        .items
        .iter()
        .find(|item| item.id == product.id)
        .map(|item| item.available);
    assert_eq!(
        available_after,
        Some(product.available - 1),
        "the unit sold stays sold, and is not counted twice: {catalog_after:?}"
    );
    up.reconcile();
    up.stop_with_sigint();
    eprintln!(
        "flash up smoke test: {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

/// `flash up --shards 3`: the same stack on a local Redis Cluster (three masters, a replica
/// each, the module on every node), an order through it, a stop with SIGINT that leaves no
/// node behind, and a second start that rejoins the same cluster with the order still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_shards_serves_from_a_local_cluster_and_rejoins_it() {
    let data = tempfile::Builder::new()
        .prefix("flash-up-cluster-")
        .tempdir()
        .expect("a temp data folder");
    let logs = tempfile::Builder::new()
        .prefix("flash-up-cluster-logs-")
        .tempdir()
        .expect("a temp log folder");
    let mut up = Up::start_with(data.path(), logs.path(), "first", Some(3));
    let edge = up.wait_healthy().await;
    let out = up.stdout();
    assert!(
        out.contains("3 masters and 3 replicas") && out.contains("cluster made now"),
        "{out}"
    );
    assert!(
        out.contains("REDIS_URL=redis+cluster://127.0.0.1:"),
        "{out}"
    );
    for (_, port) in up.redis_nodes() {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("a URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("the node answers");
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER INFO");
        assert!(
            info.contains("cluster_state:ok") && info.contains("cluster_size:3"),
            "node {port}: {info}"
        );
    }

    let (token, _, _, order) = up.buy_one(&edge, "sharded").await;
    up.stop_with_sigint();

    let mut up = Up::start_with(data.path(), logs.path(), "second", Some(3));
    up.wait_healthy().await;
    let out = up.stdout();
    assert!(
        out.contains("cluster rejoined") && out.contains("reused"),
        "{out}"
    );
    let shopper = up.client().with_token(&token).expect("a token header");
    let stored = shopper.order(&order.order_id).await.expect("the order");
    assert_eq!(stored.status, OrderStatus::Confirmed, "{stored:?}");
    up.reconcile();
    up.stop_with_sigint();

    // A cluster keeps its size: another --shards on its folder is refused, with what to do.
    let mut up = Up::start_with(data.path(), logs.path(), "third", Some(4));
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = up.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "flash up --shards 4 did not refuse\n{}",
            up.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    assert!(
        up.output().contains("holds a cluster of 6 nodes") && up.output().contains("--shards 3"),
        "{}",
        up.output()
    );
}

/// One `flash up` process and where it serves.
struct Up {
    child: Option<Child>,
    run: &'static str,
    data: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    http_port: u16,
    redis_port: u16,
    pg_port: u16,
    /// `--shards`: the cluster's node count is twice this.
    shards: Option<u16>,
}

impl Up {
    fn start(data: &Path, logs: &Path, run: &'static str) -> Up {
        Up::start_with(data, logs, run, None)
    }

    /// `shards`: `flash up --shards N`, its nodes on a run of free ports.
    fn start_with(data: &Path, logs: &Path, run: &'static str, shards: Option<u16>) -> Up {
        let [http_port, mut redis_port, pg_port] = distinct_free_ports();
        if let Some(shards) = shards {
            redis_port = free_cluster_ports(shards * 2).expect("free ports for the cluster");
        }
        let shard_args: Vec<String> = shards
            .map(|shards| vec!["--shards".to_owned(), shards.to_string()])
            .unwrap_or_default();
        let stdout = logs.join(format!("{run}.out"));
        let stderr = logs.join(format!("{run}.err"));
        let child = Command::new(flash_binary())
            .arg("up")
            .arg("--data-dir")
            .arg(data)
            .args(["--http-port", &http_port.to_string()])
            .args(["--redis-port", &redis_port.to_string()])
            .args(["--pg-port", &pg_port.to_string()])
            .args(&shard_args)
            .arg("--module")
            .arg(module_path().expect("the module is built (cargo xtask test builds it)"))
            // Servers of its own, whatever this environment points at.
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env_remove("FLASH_SECRET")
            .env_remove("FLASH_SALE")
            // Away from the workspace, whose .env `flash` would read.
            .current_dir(logs)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("a stdout file"))
            .stderr(fs::File::create(&stderr).expect("a stderr file"))
            .spawn()
            .expect("flash starts");
        Up {
            child: Some(child),
            run,
            data: data.to_path_buf(),
            stdout,
            stderr,
            http_port,
            redis_port,
            pg_port,
            shards,
        }
    }

    /// Where each redis-server of this run keeps its pid, and the port it serves.
    fn redis_nodes(&self) -> Vec<(PathBuf, u16)> {
        let Some(shards) = self.shards else {
            return vec![(self.data.join("redis").join("redis.pid"), self.redis_port)];
        };
        let kept = fs::read_to_string(self.data.join("redis-cluster").join("ports"))
            .unwrap_or_else(|_| panic!("the cluster's ports file\n{}", self.output()));
        let ports: Vec<u16> = kept
            .split(',')
            .map(|port| port.trim().parse().expect("a port"))
            .collect();
        assert_eq!(ports.len(), usize::from(shards) * 2, "{kept}");
        ports
            .into_iter()
            .map(|port| {
                let dir = self.data.join("redis-cluster").join(port.to_string());
                (dir.join("redis.pid"), port)
            })
            .collect()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Both outputs, for failure messages.
    fn output(&self) -> String {
        format!(
            "--- flash up ({} run) stdout:\n{}\n--- stderr:\n{}",
            self.run,
            self.stdout(),
            fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().expect("flash's status"))
    }

    /// A client of this run's edge (one connection of its own).
    fn client(&self) -> EdgeClient {
        EdgeClient::new(&self.url("")).expect("the edge's URL")
    }

    /// A client of the edge, once `GET /healthz` answers 200 and `flash up` said it is up.
    async fn wait_healthy(&mut self) -> EdgeClient {
        let edge = self.client();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                panic!(
                    "flash up exited while starting ({status})\n{}",
                    self.output()
                );
            }
            // Healthy, and this run's edge: it says so once it listens (whatever else might
            // answer on the port).
            if let Ok((status, _)) = edge.health().await
                && status == StatusCode::OK
                && self
                    .stdout()
                    .contains(&format!("Flash is up: {}", self.url("/")))
            {
                return edge;
            }
            assert!(
                Instant::now() < deadline,
                "GET /healthz never answered 200 within {START_TIMEOUT:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `username` signs in and buys one unit of the first product in stock, and the worker
    /// confirms it: the token, the catalog as it was, the product and the order.
    async fn buy_one(
        &self,
        edge: &EdgeClient,
        username: &str,
    ) -> (String, ProductsPage, Product, OrderAccepted) {
        let token = edge.sign_in(username).await.expect("signed in").token;
        let shopper = self.client().with_token(&token).expect("a token header");
        let catalog = edge.products(0, 60).await.expect("the catalog");
        let product = catalog
            .items
            .iter()
            .find(|item| item.available > 0)
            .cloned()
            .unwrap_or_else(|| panic!("a product in stock: {catalog:?}"));
        let order = shopper
            .buy(&Buy {
                product_id: product.id,
                qty: None,
                order_id: None,
            })
            .await
            .expect("the order is accepted (202)");
        self.wait_confirmed(&shopper, &order.order_id).await;
        (token, catalog, product, order)
    }

    /// The embedded worker writes the order to PostgreSQL and settles it.
    async fn wait_confirmed(&self, shopper: &EdgeClient, order_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let order = shopper.order(order_id).await.expect("the order");
            if order.status == OrderStatus::Confirmed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the order never got confirmed: {order:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `flash reconcile` against the servers this run printed: exit 0, every product
    /// matching.
    fn reconcile(&self) {
        let out = self.stdout();
        let exports = out
            .lines()
            .find_map(|line| line.trim().strip_prefix("export "))
            .unwrap_or_else(|| panic!("an export line for other terminals\n{out}"));
        let mut command = Command::new(flash_binary());
        command.arg("reconcile").current_dir(self.data.as_path());
        for pair in exports.split_whitespace() {
            let (name, value) = pair.split_once('=').expect("NAME=value");
            command.env(name, value);
        }
        let reconcile = command.output().expect("flash reconcile runs");
        assert!(
            reconcile.status.success(),
            "flash reconcile: {}\n{}{}",
            reconcile.status,
            String::from_utf8_lossy(&reconcile.stdout),
            String::from_utf8_lossy(&reconcile.stderr)
        );
    }

    /// SIGINT, as Ctrl-C sends it: `flash` exits 0 within the timeout, having stopped its
    /// servers (their pid files are removed on a clean stop, the processes are gone, their
    /// ports are closed).
    fn stop_with_sigint(&mut self) {
        let redis_nodes = self.redis_nodes();
        let pid_files = redis_nodes
            .iter()
            .map(|(file, _)| ("redis-server", file.clone()))
            .chain([(
                "postgres",
                self.data.join("postgres").join("postmaster.pid"),
            )]);
        let servers: Vec<(&str, PathBuf, u32)> = pid_files
            .map(|(name, file)| {
                let pid = fs::read_to_string(&file)
                    .ok()
                    .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
                    .unwrap_or_else(|| {
                        panic!("{} holds {name}'s pid\n{}", file.display(), self.output())
                    });
                (name, file, pid)
            })
            .collect();
        let child = self.child.as_mut().expect("flash is running");
        signal(child.id(), libc::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("flash's status") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "flash up did not exit within {STOP_TIMEOUT:?} of SIGINT\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.child = None;
        assert!(
            status.success(),
            "flash up exited with {status} after SIGINT\n{}",
            self.output()
        );
        let out = self.stdout();
        assert!(out.contains("Ctrl-C: stopping"), "{out}");
        for (name, file, pid) in servers {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "{name} (pid {pid}) survived flash up\n{out}"
            );
            assert!(
                !file.exists(),
                "{name} did not stop cleanly: {} is left\n{out}",
                file.display()
            );
        }
        let ports = [("the edge", self.http_port), ("postgres", self.pg_port)]
            .into_iter()
            .chain(redis_nodes.iter().map(|(_, port)| ("redis-server", *port)));
        for (name, port) in ports {
            assert!(
                TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
                "{name} still listens on {port}\n{out}"
            );
        }
    }
}

impl Drop for Up {
    /// A failed test still stops the stack (its servers then stop with it).
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGINT);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a pid");
    // SAFETY: kill(2) on our own child, not yet reaped; no memory is involved.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Three ports nobody listens on, all different.
fn distinct_free_ports() -> [u16; 3] {
    let mut ports = Vec::new();
    while ports.len() < 3 {
        let port = free_port().expect("a free port");
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    [ports[0], ports[1], ports[2]]
}
