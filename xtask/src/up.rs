//! `cargo xtask up`: run it. One redis-server with the release module, its data in the
//! project's `.flash/redis/` (append-only file, reused on the next run), a guide, a live demo,
//! and a clean stop on Ctrl-C.

use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use flash_core::keys::SaleKeys;
use redis::ConnectionLike;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::workspace::{Profile, build_module, info_field, log_tail, quote, redis_server, root};
use crate::{deps, reply};

/// How long a starting server may take: replaying a large append-only file is not instant.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long SHUTDOWN may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const LOG_FILE: &str = "redis.log";

#[derive(clap::Args)]
pub struct UpArgs {
    /// TCP port on 127.0.0.1 for redis-server.
    #[arg(long, env = "FLASH_REDIS_PORT", default_value_t = 6379)]
    port: u16,
}

pub fn run(args: &UpArgs) -> Result<()> {
    deps::ensure()?;
    let module = build_module(Profile::Release)?;
    let data_dir = root().join(".flash").join("redis");
    fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    ensure_port_free(args.port)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    // tokio's Child must be spawned inside the runtime that later waits on it.
    let _entered = runtime.enter();
    let mut server = spawn_server(args.port, &module, &data_dir)?;
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", args.port))
        .context("cannot build the redis URL")?;
    let log = data_dir.join(LOG_FILE);
    let version = wait_until_ready(&mut server, &client, &log)?;

    print_guide(args.port, &version, &module, &data_dir, &log);
    if let Err(error) = demo(&client, args.port) {
        // The server is up and the user may still use it; a failed demo is reported, not fatal.
        println!("\nThe demo failed: {error:#}");
    }
    println!(
        "\nredis-server is running (pid {}). Press Ctrl-C to stop it; the data stays in {}.",
        server
            .id()
            .map_or_else(|| "?".to_owned(), |pid| pid.to_string()),
        data_dir.display()
    );
    runtime.block_on(supervise(&mut server, &client, &data_dir))
}

/// The port must be free on 127.0.0.1, or redis-server would exit with a terse log line.
fn ensure_port_free(port: u16) -> Result<()> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AddrInUse => {
            let other = if port == u16::MAX { 6380 } else { port + 1 };
            // Installing Debian's redis-server also starts its service on 6379.
            bail!(
                "port {port} on 127.0.0.1 is busy (another redis-server? Debian's package runs \
                 one on 6379: `sudo systemctl stop redis-server`): stop it, or pick another \
                 port with `cargo xtask up --port {other}` (or FLASH_REDIS_PORT={other})"
            )
        }
        Err(error) => Err(anyhow!(error).context(format!("cannot check port {port}"))),
    }
}

fn spawn_server(port: u16, module: &Path, data_dir: &Path) -> Result<Child> {
    let mut command = Command::new(redis_server());
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--daemonize", "no"])
        .arg("--dir")
        .arg(data_dir)
        .args(["--logfile", LOG_FILE])
        // The append-only file is the durable copy; RDB snapshots would only duplicate it.
        .args(["--appendonly", "yes", "--save", ""])
        .arg("--loadmodule")
        .arg(module)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command.spawn().map_err(|error| {
        anyhow!(
            "cannot start redis-server ({error}); install it with `cargo xtask deps` or point \
             REDIS_SERVER at one"
        )
    })
}

/// Waits for PING (a server replaying its append-only file answers LOADING); returns the
/// server's version.
fn wait_until_ready(server: &mut Child, client: &redis::Client, log: &Path) -> Result<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = server.try_wait()? {
            bail!(
                "redis-server exited at start ({status}); its log ({}):\n{}",
                log.display(),
                log_tail(log, 20)
            );
        }
        if let Ok(mut conn) = client.get_connection()
            && redis::cmd("PING").query::<String>(&mut conn).is_ok()
        {
            let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
            return Ok(info_field(&info, "redis_version").unwrap_or("?").to_owned());
        }
        if Instant::now() > deadline {
            bail!(
                "redis-server did not answer PING within {START_TIMEOUT:?}; its log ({}):\n{}",
                log.display(),
                log_tail(log, 20)
            );
        }
        sleep(Duration::from_millis(50));
    }
}

/// The commands of the guide's session (sale `spring`) and of the live demo (sale `demo`).
fn session(sale: &str, cart: &str) -> Vec<Vec<String>> {
    let lines: [&[&str]; 5] = [
        &["FLASH.SALE", sale, "HOLD", "40000", "LIMIT", "4"],
        &["FLASH.LOAD", sale, "14", "100", "7", "25"],
        &["FLASH.RESERVE", sale, cart, "alice", "14", "2"],
        &["FLASH.CHECKOUT", sale, cart, "alice"],
        &["FLASH.INFO", sale],
    ];
    lines
        .iter()
        .map(|line| line.iter().map(|word| (*word).to_owned()).collect())
        .collect()
}

fn print_guide(port: u16, version: &str, module: &Path, data_dir: &Path, log: &Path) {
    let cli = format!("redis-cli -p {port}");
    println!();
    println!("Flash is up: redis-server {version} with the Flash module on 127.0.0.1:{port}");
    println!("  module: {}", module.display());
    println!(
        "  data:   {} (append-only file, kept across runs)",
        data_dir.display()
    );
    println!("  log:    {}", log.display());
    println!();
    println!("Try it from another terminal:");
    for line in session("spring", "cart-1") {
        let words: Vec<String> = line.iter().map(|word| quote(word)).collect();
        println!("  {cli} {}", words.join(" "));
    }
    println!("Watch the stock of sale spring change live (in one more terminal):");
    println!(
        "  {cli} SUBSCRIBE {}",
        quote(&SaleKeys::new("spring").channel())
    );
    println!(
        "Or open a shell with `{cli}`; FLASH.CART, FLASH.RELEASE, FLASH.BUY, FLASH.EXPIRE too."
    );
}

/// Runs the guide's session on sale `demo` and prints each reply as redis-cli would. The demo
/// sale is wiped first so the session replies the same on every run (alice's LIMIT and the
/// checked-out cart-1 would otherwise refuse the second run).
fn demo(client: &redis::Client, port: u16) -> Result<()> {
    let sale = "demo";
    let keys = SaleKeys::new(sale);
    let mut conn = client.get_connection()?;
    let wiped = wipe_sale(&mut conn, sale)?;

    let mut subscriber = client.get_connection()?;
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe(keys.channel())?;

    println!();
    println!(
        "Live demo on sale {sale:?} ({}; every reply below is real):",
        if wiped > 0 {
            "reset from the last run"
        } else {
            "new"
        }
    );
    for line in session(sale, "cart-1") {
        let mut command = redis::cmd(&line[0]);
        for word in &line[1..] {
            command.arg(word);
        }
        let value = conn.req_command(&command)?;
        println!("127.0.0.1:{port}> {}", line.join(" "));
        println!("{}", reply::format(&value));
    }

    // The messages were published while the commands ran; they wait in the socket.
    pubsub.set_read_timeout(Some(Duration::from_millis(300)))?;
    println!("Messages on {} meanwhile:", keys.channel());
    loop {
        match pubsub.get_message() {
            Ok(message) => println!("  {}", message.get_payload::<String>()?),
            Err(error) if error.is_timeout() => break,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Deletes every key of the sale; returns how many there were.
fn wipe_sale(conn: &mut redis::Connection, sale: &str) -> Result<usize> {
    let pattern = format!("flash:{{{sale}}}:*");
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)?;
        if !keys.is_empty() {
            redis::cmd("UNLINK").arg(&keys).exec(conn)?;
            deleted += keys.len();
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

enum Stop {
    Signal(&'static str),
    Exited(ExitStatus),
}

/// Waits for Ctrl-C or SIGTERM, then stops the server with SHUTDOWN (which flushes the
/// append-only file); or reports a server that stopped by itself.
async fn supervise(server: &mut Child, client: &redis::Client, data_dir: &Path) -> Result<()> {
    let log = data_dir.join(LOG_FILE);
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let stop = tokio::select! {
        result = tokio::signal::ctrl_c() => {
            result.context("cannot watch Ctrl-C")?;
            Stop::Signal("Ctrl-C")
        }
        _ = terminate.recv() => Stop::Signal("SIGTERM"),
        status = server.wait() => Stop::Exited(status?),
    };
    let status = match stop {
        Stop::Exited(status) => status,
        Stop::Signal(name) => {
            println!("\n{name}: stopping redis-server…");
            // A Ctrl-C in the terminal reaches redis-server too (same process group), which
            // then shuts down by itself; SHUTDOWN then finds no server, and that is fine.
            if let Ok(mut conn) = client.get_connection() {
                let _ = conn.req_command(&redis::cmd("SHUTDOWN"));
            }
            match tokio::time::timeout(STOP_TIMEOUT, server.wait()).await {
                Ok(status) => status?,
                Err(_) => {
                    server.kill().await?;
                    bail!(
                        "redis-server did not stop within {STOP_TIMEOUT:?}; killed it. Its log \
                         ({}):\n{}",
                        log.display(),
                        log_tail(&log, 20)
                    );
                }
            }
        }
    };
    // redis-server exits 0 after a clean shutdown, whether SHUTDOWN or a signal asked for it.
    if status.success() {
        println!(
            "redis-server stopped cleanly; the data is in {}",
            data_dir.display()
        );
        Ok(())
    } else {
        bail!(
            "redis-server exited with {status}; its log ({}):\n{}",
            log.display(),
            log_tail(&log, 20)
        )
    }
}
