//! `flash up`: the whole stack on this machine, as children it supervises, served on
//! http://127.0.0.1:8000.
//!
//! Start: the data folder (locked), redis-server with the module, PostgreSQL, the
//! migrations, the demo catalog on an empty database, the sale if missing, its stock from
//! the database, then the edge with its order worker in this process. REDIS_URL and
//! DATABASE_URL replace the servers with running ones.
//!
//! Stop (Ctrl-C, SIGTERM, or a part dying): backwards. The edge first, so its worker
//! finishes the batch in hand while both servers still answer; then redis-server (its
//! append-only file flushed); then PostgreSQL. A second run reuses everything: no new
//! cluster, no second catalog, stock loaded with FLASH.LOAD TOTAL so nothing counts twice.
//!
//! - [`data`]: the data folder, its lock and the session secret.
//! - [`stack`]: what runs, the signals, the wait for either, the stop in reverse order.
//! - [`redis_server`], [`postgres`]: starting each (through `flash-servers`, as the test
//!   harness does) and waiting until it answers; [`redis_cluster`]: `--shards N`, a local
//!   Redis Cluster instead of one redis-server.
//! - [`demo`]: the demo catalog.

mod data;
pub mod demo;
mod postgres;
mod redis_cluster;
mod redis_server;
mod stack;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use flash_client::{Backend, FlashClient, SaleInfo, SaleSettings};
use flash_core::ErrorCode;
use flash_edge::settings::EdgeSettings;
use tokio::sync::oneshot;
use tokio_postgres::NoTls;

use crate::common::Signals;
use data::DataDir;
use flash_servers::{MODULE_FILE, shown};
use stack::{Edge, Event, Part, Stack, supervise};

/// The sale made when it is missing: a 40 s cart timer, 5 units per buyer.
const HOLD_MS: i64 = 40_000;
const LIMIT: i64 = 5;
/// How long the edge may take to start (its worker's first connection included).
const EDGE_START: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the servers keep their data between runs.
    #[arg(long, env = "FLASH_DATA_DIR", default_value = ".flash")]
    pub data_dir: PathBuf,
    /// The shop, the API and live stock on 127.0.0.1:PORT.
    #[arg(long, env = "FLASH_HTTP_PORT", default_value_t = 8000)]
    pub http_port: u16,
    /// redis-server's port on 127.0.0.1 (not used with REDIS_URL); with --shards, the first
    /// node's (the others follow).
    #[arg(long, env = "FLASH_REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,
    /// A local Redis Cluster of N masters (3 to 16: Redis Cluster needs three), each with a
    /// replica, instead of one redis-server (the module and the append-only file on every
    /// node; not with REDIS_URL).
    #[arg(long, value_parser = clap::value_parser!(u16).range(3..=16))]
    pub shards: Option<u16>,
    /// PostgreSQL's port on 127.0.0.1 (not used with DATABASE_URL); not 5432, which
    /// Debian's own PostgreSQL takes.
    #[arg(long, env = "FLASH_PG_PORT", default_value_t = 5433)]
    pub pg_port: u16,
    /// The Flash module for redis-server [default: libflash_module.so beside this program].
    #[arg(long, env = "FLASH_MODULE")]
    pub module: Option<PathBuf>,
    /// The sale (made with a 40 s cart timer and 5 units per buyer when missing).
    #[arg(long, env = "FLASH_SALE", default_value = "demo")]
    pub sale: String,
    /// Requests per second per client IP [default: the edge's, 100]; 0 turns it off.
    #[arg(long)]
    pub rate_per_ip: Option<u32>,
    /// Cart and order calls per second per user [default: the edge's, 10]; 0 turns it off.
    #[arg(long)]
    pub rate_per_user: Option<u32>,
    /// Do not add the demo catalog to an empty database.
    #[arg(long)]
    pub no_demo: bool,
    /// Use this Redis instead of starting redis-server (without the module there, the Lua
    /// twin runs).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Use this PostgreSQL instead of starting one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The session signing key [default: one made once and kept in <data-dir>/secret].
    #[arg(long, env = "FLASH_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

pub async fn run(args: UpArgs) -> Result<ExitCode> {
    // Watched from the start: a Ctrl-C during initdb stops what has started.
    let mut signals = Signals::new()?;
    let mut stack = Stack::default();
    let started = tokio::select! {
        started = start(&args, &mut stack) => Some(started),
        name = signals.recv() => {
            println!("\n{name} while starting: stopping what has started");
            None
        }
    };
    let started = match started {
        Some(Ok(started)) => started,
        Some(Err(error)) => {
            eprintln!("flash up: {error:#}");
            if stack.is_running() {
                println!("Stopping what has started:");
            }
            stack.stop().await;
            return Ok(ExitCode::FAILURE);
        }
        None => {
            let clean = stack.stop().await;
            return Ok(exit_code(clean));
        }
    };
    print!("{}", started.summary);

    let event = supervise(&mut stack, &mut signals).await;
    let asked = match event {
        Event::Signal(name) => {
            println!("\n{name}: stopping");
            true
        }
        Event::Exited(part, status) => {
            let server = match part {
                Part::Redis(node) => stack.redis.get(node),
                Part::Postgres => stack.postgres.as_ref(),
            };
            if let Some(server) = server {
                eprintln!(
                    "\nflash up: {} (pid {}) stopped unexpectedly ({}); the end of its log \
                     ({}):\n{}",
                    server.name,
                    server.pid,
                    status.map_or_else(|error| error.to_string(), |status| status.to_string()),
                    shown(&server.log),
                    server.log_tail(15)
                );
            }
            println!("Stopping the rest:");
            false
        }
        Event::EdgeEnded(outcome) => {
            // Its task is over: stop() must not wait for it again.
            stack.edge = None;
            match outcome {
                Ok(Ok(())) => eprintln!("\nflash up: the edge stopped unexpectedly"),
                Ok(Err(error)) => eprintln!("\nflash up: the edge failed: {error:#}"),
                Err(error) => eprintln!("\nflash up: the edge crashed: {error}"),
            }
            println!("Stopping the rest:");
            false
        }
    };
    let clean = stack.stop().await;
    println!(
        "Stopped. The data stays in {} for the next `flash up`.",
        started.data_shown
    );
    Ok(exit_code(asked && clean))
}

fn exit_code(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What started, for the summary.
struct Started {
    summary: String,
    data_shown: String,
}

async fn start(args: &UpArgs, stack: &mut Stack) -> Result<Started> {
    // Busy ports are found before anything starts, with what to do about each.
    check_port(
        args.http_port,
        &format!(
            "(another `flash up` or `flash edge`?): stop it, or serve on another port with \
             --http-port {other} (`cargo xtask up -- --http-port {other}`)",
            other = next_port(args.http_port)
        ),
    )?;
    if args.redis_url.is_some() && args.shards.is_some() {
        bail!("--shards starts a cluster of its own: leave REDIS_URL unset to use it");
    }
    if args.redis_url.is_none() && args.shards.is_none() {
        check_port(
            args.redis_port,
            &format!(
                "(another redis-server? Debian's redis-server package runs one on 6379: `sudo \
                 systemctl stop redis-server`): stop it, run ours on another port with \
                 --redis-port {other} (`cargo xtask up -- --redis-port {other}`), or use that \
                 server with REDIS_URL=redis://127.0.0.1:{port}/",
                port = args.redis_port,
                other = next_port(args.redis_port)
            ),
        )?;
    }
    if args.database_url.is_none() {
        check_port(
            args.pg_port,
            &format!(
                "(another PostgreSQL?): run ours on another port with --pg-port {other}, or \
                 use that server with DATABASE_URL=postgres://USER@127.0.0.1:{port}/DATABASE",
                port = args.pg_port,
                other = next_port(args.pg_port)
            ),
        )?;
    }
    let data = stack.data.insert(DataDir::open(&args.data_dir)?);
    let mut summary = Vec::new();
    let mut exports = Vec::new();

    let redis_url = match (&args.redis_url, args.shards) {
        (Some(url), _) => url.clone(),
        (None, Some(shards)) => {
            let module = module_path(args.module.as_deref())?;
            let (url, lines) = redis_cluster::start(
                &mut stack.redis,
                shards,
                args.redis_port,
                &data.join("redis-cluster"),
                &module,
            )
            .await?;
            summary.extend(lines);
            exports.push(format!("REDIS_URL={url}"));
            url
        }
        (None, None) => {
            let module = module_path(args.module.as_deref())?;
            let (url, lines) = redis_server::start(
                &mut stack.redis,
                args.redis_port,
                &data.join("redis"),
                &module,
            )
            .await?;
            summary.extend(lines);
            exports.push(format!("REDIS_URL={url}"));
            url
        }
    };
    let engine = FlashClient::connect(&redis_url)
        .await
        .with_context(|| format!("cannot reach Redis at {redis_url}"))?;
    if args.redis_url.is_some() {
        summary.push(match engine.backend() {
            Backend::Module => {
                "  redis         REDIS_URL (a running server), Flash module".to_owned()
            }
            Backend::Lua => "  redis         REDIS_URL (a running server) without the module: the \
                             Lua twin (the worker runs the expiry)"
                .to_owned(),
        });
    }

    let database_url = match &args.database_url {
        Some(url) => {
            summary.push("  postgres      DATABASE_URL (a running server)".to_owned());
            url.clone()
        }
        None => {
            let (url, line) =
                postgres::start(&mut stack.postgres, args.pg_port, &data.path).await?;
            summary.push(line);
            exports.push(format!("DATABASE_URL={url}"));
            url
        }
    };

    let (mut pg, connection) = tokio_postgres::connect(&database_url, NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    tokio::spawn(connection);
    flash_worker::migrate::migrate(&mut pg).await?;
    let added = if args.no_demo {
        0
    } else {
        demo::seed_if_empty(&mut pg).await?
    };
    let products: i64 = pg
        .query_one("SELECT count(*) FROM products", &[])
        .await?
        .get(0);
    let sale_made = ensure_sale(&engine, &args.sale).await?;
    // Every start: TOTAL subtracts what carts and orders hold, so a restart counts nothing
    // twice, and stock changed in the database meanwhile reaches the sale.
    flash_worker::stock::sync(&pg, &engine, &args.sale).await?;
    let info = engine.info(&args.sale).await?;
    drop(pg);

    let secret = match &args.secret {
        Some(secret) => secret.clone(),
        None => data.secret()?,
    };
    let settings = edge_settings(args, redis_url, database_url, secret)?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(flash_edge::server::run(
        settings,
        move |address| {
            let _ = ready_tx.send(address);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let edge = stack.edge.insert(Edge {
        stop: Some(stop_tx),
        task,
    });
    let address = match tokio::time::timeout(EDGE_START, ready_rx).await {
        Ok(Ok(address)) => address,
        // `ready` was dropped unsent: the edge gave up, and its error says why.
        Ok(Err(_)) => {
            let outcome = (&mut edge.task).await;
            stack.edge = None;
            return Err(match outcome {
                Ok(Err(error)) => error.context("the edge did not start"),
                Ok(Ok(())) => anyhow!("the edge stopped while starting"),
                Err(error) => anyhow!("the edge crashed while starting: {error}"),
            });
        }
        Err(_) => bail!("the edge did not start within {EDGE_START:?}"),
    };

    let url = format!("http://{address}/");
    let mut block = format!("\nFlash is up: {url}\n\n");
    block.push_str(&format!(
        "  edge          {url} (the shop, the JSON API, live stock), with the order worker\n"
    ));
    block.push_str(&format!(
        "  sale          {}\n",
        describe_sale(&args.sale, &info, products, added, sale_made)
    ));
    for line in summary {
        block.push_str(&line);
        block.push('\n');
    }
    let program = std::env::current_exe().map_or_else(|_| "flash".to_owned(), |exe| shown(&exe));
    block.push_str("\nFrom another terminal:\n");
    if !exports.is_empty() {
        block.push_str(&format!("  export {}\n", exports.join(" ")));
    }
    block.push_str(&format!(
        "  {program} sale show      (and orders, reconcile, simulate; --help lists all)\n"
    ));
    block.push_str(&format!(
        "Stop: Ctrl-C (or kill -INT {}). The data stays in {} for the next run.\n",
        std::process::id(),
        shown(&data.path)
    ));
    Ok(Started {
        summary: block,
        data_shown: shown(&data.path),
    })
}

/// The edge's settings: its own defaults (and FLASH_* environment variables), with where
/// it listens, what it talks to and the key it signs with set by `flash up`.
fn edge_settings(
    args: &UpArgs,
    redis_url: String,
    database_url: String,
    secret: String,
) -> Result<EdgeSettings> {
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Defaults {
        #[command(flatten)]
        settings: EdgeSettings,
    }
    let mut settings = Defaults::try_parse_from(["--database-url", database_url.as_str()])
        .context("the edge's settings in the environment (FLASH_*)")?
        .settings;
    settings.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.http_port));
    settings.redis_url = redis_url;
    settings.database_url = database_url;
    settings.sale = args.sale.clone();
    settings.secret = Some(secret);
    settings.no_worker = false;
    // `flash up` is for trying Flash out: sign in by name (a shop's login can be added with
    // FLASH_JWT_SECRET or FLASH_JWT_JWKS).
    settings.login.demo_login = true;
    settings.allowed_origins = vec![
        format!("http://127.0.0.1:{}", args.http_port),
        format!("http://localhost:{}", args.http_port),
    ];
    if let Some(rate) = args.rate_per_ip {
        settings.rate_per_ip = rate;
    }
    if let Some(rate) = args.rate_per_user {
        settings.rate_per_user = rate;
    }
    Ok(settings)
}

/// Makes the sale if it does not exist; an existing one keeps the settings it has (someone
/// may have changed them with `flash sale create`). Returns whether it was made now.
async fn ensure_sale(engine: &FlashClient, sale: &str) -> Result<bool> {
    match engine.info(sale).await {
        Ok(_) => Ok(false),
        Err(error) if error.code() == Some(ErrorCode::NoSale) => {
            let settings = SaleSettings {
                hold_ms: Some(HOLD_MS),
                limit: Some(LIMIT),
                ..SaleSettings::default()
            };
            engine
                .sale(sale, &settings)
                .await
                .with_context(|| format!("cannot create the sale '{sale}'"))?;
            Ok(true)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read the sale '{sale}'")),
    }
}

fn describe_sale(name: &str, info: &SaleInfo, products: i64, added: usize, made: bool) -> String {
    let state = if info.open {
        "open"
    } else {
        "closed (outside its START..END window)"
    };
    let catalog = if added > 0 {
        format!("{products} products (the demo catalog, added now)")
    } else {
        format!("{products} products")
    };
    let limit = if info.limit == 0 {
        "no limit per buyer".to_owned()
    } else {
        format!("{} units per buyer", info.limit)
    };
    format!(
        "{name} ({}): {state}, {catalog}, {} units available, {} s cart hold, {limit}",
        if made { "new" } else { "kept" },
        info.total.available,
        info.hold_ms / 1000
    )
}

/// The module path: given (`--module` or `$FLASH_MODULE`), or beside this program. Absolute, because
/// redis-server resolves a relative one against its own folder.
fn module_path(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("cannot locate the flash program")?
            .with_file_name(MODULE_FILE),
    };
    if !path.is_file() {
        bail!(
            "the Flash module is not at {}: build it (`cargo build --release -p flash-module`) \
             and pass --module <path to {MODULE_FILE}> (or FLASH_MODULE), or run `cargo xtask \
             up`, which builds both and passes it",
            path.display()
        );
    }
    std::fs::canonicalize(&path).with_context(|| format!("cannot resolve {}", path.display()))
}

pub(crate) fn check_port(port: u16, busy: &str) -> Result<()> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AddrInUse => {
            bail!("port {port} on 127.0.0.1 is busy {busy}")
        }
        Err(error) => Err(anyhow!(error).context(format!("cannot check port {port}"))),
    }
}

fn next_port(port: u16) -> u16 {
    port.checked_add(1).unwrap_or(port - 1)
}
