//! A real `redis-server`, with or without the Flash module, on a free loopback port in its
//! own temp dir, killed when the guard drops.

use std::io;

use crate::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How to start a server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Load the Flash module from this path (None: a plain server, for the Lua twin).
    pub module: Option<PathBuf>,
    /// AOF on, fsync always: every acknowledged write survives a kill -9.
    pub aof: bool,
    /// Replicate from this port.
    pub replica_of: Option<u16>,
}

/// A running redis-server. Dropping it kills the process; the data dir is removed with it
/// unless it was handed over by [`RedisServer::kill_keep_dir`].
pub struct RedisServer {
    pub port: u16,
    options: ServerOptions,
    child: Option<Child>,
    dir: DataDir,
}

enum DataDir {
    Owned(tempfile::TempDir),
    Borrowed(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Owned(dir) => dir.path(),
            DataDir::Borrowed(path) => path,
        }
    }
}

impl RedisServer {
    pub fn start(options: ServerOptions) -> io::Result<RedisServer> {
        let dir = tempfile::Builder::new().prefix("flash-redis-").tempdir()?;
        Self::start_in(options, DataDir::Owned(dir))
    }

    fn start_in(options: ServerOptions, mut dir: DataDir) -> io::Result<RedisServer> {
        // The free port is only free when we looked: another process may take it before
        // redis-server binds it. Then try another.
        for _ in 0..3 {
            match Self::spawn(options.clone(), dir)? {
                Ok(server) => return Ok(server),
                Err(mut failed) if failed.log().contains("Address already in use") => {
                    failed.kill();
                    dir = std::mem::replace(&mut failed.dir, DataDir::Borrowed(PathBuf::new()));
                }
                Err(failed) => {
                    return Err(io::Error::other(format!(
                        "redis-server on port {} did not start:\n{}",
                        failed.port,
                        failed.log()
                    )));
                }
            }
        }
        Err(io::Error::other("no free port after 3 tries"))
    }

    /// Starts one server; `Err` hands back the failed one (with its log and data dir).
    fn spawn(options: ServerOptions, dir: DataDir) -> io::Result<Result<RedisServer, RedisServer>> {
        let port = free_port()?;
        let mut command = Command::new(redis_server_binary());
        command
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .args(["--logfile", "redis.log", "--enable-debug-command", "local"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if options.aof {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        }
        if let Some(master) = options.replica_of {
            command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        if let Some(module) = &options.module {
            command.arg("--loadmodule").arg(module);
        }
        let child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start redis-server ({e}); install it: cargo xtask deps"),
            )
        })?;
        let mut server = RedisServer {
            port,
            options,
            child: Some(child),
            dir,
        };
        Ok(match server.wait_until_ready() {
            Ok(()) => Ok(server),
            Err(_) => Err(server),
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn client(&self) -> redis::Client {
        // The URL is built here from a port number; it always parses.
        redis::Client::open(self.url()).expect("a valid redis URL")
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("redis.log")).unwrap_or_default()
    }

    /// Kills the process (SIGKILL: a crash, no shutdown save), stays down for `down_for`,
    /// and starts a new one on the same data dir and options, as after a power cut.
    pub fn crash_and_restart(mut self, down_for: Duration) -> io::Result<RedisServer> {
        self.kill();
        sleep(down_for);
        let dir = std::mem::replace(&mut self.dir, DataDir::Borrowed(PathBuf::new()));
        Self::start_in(self.options.clone(), dir)
    }

    /// Kills the process now (SIGKILL); the guard keeps the data dir until it drops.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_until_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = self.client();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "redis-server exited with {status}:\n{}",
                    self.log()
                )));
            }
            if let Ok(mut conn) = client.get_connection() {
                // A server still loading its AOF answers LOADING: not ready yet.
                let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut conn);
                if pong.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "redis-server on port {} did not answer PING:\n{}",
                    self.port,
                    self.log()
                )));
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_server_binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER").map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The built module: `$FLASH_MODULE`, else the newest of `target/{debug,release}`.
pub fn module_path() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FLASH_MODULE") {
        return Ok(PathBuf::from(path));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("libflash_module.so"))
        .filter_map(|path| Some((path.metadata().ok()?.modified().ok()?, path)))
        .max()
        .map(|(_, path)| path)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "module not built: run `cargo build -p flash-module` (cargo xtask test does it)",
            )
        })
}
