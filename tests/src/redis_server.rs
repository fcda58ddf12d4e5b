//! A real `redis-server`, with or without the Flash module, on a free loopback port in its
//! own temp dir, killed when the guard drops. Started by `flash-servers`, as `flash up`'s.

use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use flash_servers::redis::ready;
use flash_servers::{Aof, ClusterNode, RedisConfig, Server, Supervision, find_module};

use crate::{block_on, free_cluster_port, free_port, io_error, retire_port};

/// How long a test waits for a server to answer (an append-only file may be replayed).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start a server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Load the Flash module from this path (None: a plain server, for the Lua twin).
    pub module: Option<PathBuf>,
    /// More modules, loaded after Flash's (the bench's API floor).
    pub extra_modules: Vec<PathBuf>,
    /// AOF on, fsync always: every acknowledged write survives a kill -9.
    pub aof: bool,
    /// Replicate from this port.
    pub replica_of: Option<u16>,
    /// Start as a Redis Cluster node (on a port whose bus port, + 10000, is free too).
    pub cluster: Option<ClusterNode>,
}

/// A running redis-server. Dropping it kills the process, then removes the data dir.
pub struct RedisServer {
    pub port: u16,
    options: ServerOptions,
    /// Declared before `dir`: the process dies before its folder goes.
    server: Option<Server>,
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
        let port = if options.cluster.is_some() {
            free_cluster_port()?
        } else {
            free_port()?
        };
        let config = RedisConfig {
            port,
            dir: dir.path().to_path_buf(),
            module: options.module.clone(),
            extra_modules: options.extra_modules.clone(),
            aof: if options.aof { Aof::Always } else { Aof::Off },
            replica_of: options.replica_of,
            debug_command: true,
            cluster: options.cluster,
        };
        let mut server = config
            .spawn(Supervision::Attached)
            .map_err(|error| io_error(&error))?;
        let started = block_on(ready(&mut server, port, START_TIMEOUT))?;
        let guard = RedisServer {
            port,
            options,
            server: Some(server),
            dir,
        };
        Ok(match started {
            Ok(_version) => Ok(guard),
            Err(_) => Err(guard),
        })
    }

    pub fn url(&self) -> String {
        flash_servers::redis::url(self.port)
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
    ///
    /// A cluster node's ports (client and bus) are retired: no server this process starts
    /// later gets them. The other nodes and the clients still know the dead node's address,
    /// and a node of another test's cluster started there meanwhile would answer them as if
    /// it were that node (a MOVED into the other cluster).
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
            if self.options.cluster.is_some() {
                retire_port(self.port);
                if let Some(bus) = self.port.checked_add(10_000) {
                    retire_port(bus);
                }
            }
        }
    }
}

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The built module: `$FLASH_MODULE`, else the newest of `target/{debug,release}`.
pub fn module_path() -> io::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    find_module([target.join("debug"), target.join("release")]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "module not built: run `cargo build -p flash-module` (cargo xtask test does it)",
        )
    })
}
