//! A real PostgreSQL: `initdb` into a temp dir, `postgres` on a free loopback port, killed
//! when the guard drops. Each test asks for its own fresh database. Made and started by
//! `flash-servers`, as `flash up`'s (as `nobody` when root, which CI is).

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use flash_servers::postgres::{THROWAWAY, USER, prepare, ready};
use flash_servers::{Server, Supervision};

use crate::{block_on, free_port, io_error};

/// How long a test waits for the server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct PostgresServer {
    pub port: u16,
    bin: PathBuf,
    /// Declared before the folder: the process dies before its folder goes.
    server: Server,
    _dir: tempfile::TempDir,
}

impl PostgresServer {
    /// A throwaway cluster: fsync and synchronous commit off, for tests.
    pub fn start() -> io::Result<PostgresServer> {
        Self::start_with(false)
    }

    /// `durable`: PostgreSQL's default crash safety (fsync, synchronous commit), for
    /// benchmarks whose numbers must mean something.
    pub fn start_with(durable: bool) -> io::Result<PostgresServer> {
        let dir = tempfile::Builder::new().prefix("flash-pg-").tempdir()?;
        let cluster = block_on(prepare(&dir.path().join("data"), durable))?
            .map_err(|error| io_error(&error))?;
        let port = free_port()?;
        let mut settings = vec!["max_connections=200"];
        if !durable {
            settings.extend_from_slice(THROWAWAY);
        }
        let mut server = cluster
            .spawn(
                port,
                &dir.path().join("postgres.log"),
                &settings,
                Supervision::Attached,
            )
            .map_err(|error| io_error(&error))?;
        block_on(async { ready(&mut server, port, START_TIMEOUT).await.map(drop) })?
            .map_err(|error| io_error(&error))?;
        Ok(PostgresServer {
            port,
            bin: cluster.bin,
            server,
            _dir: dir,
        })
    }

    /// A new empty database; returns its URL.
    pub fn create_database(&self) -> io::Result<String> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let created = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .arg(&name)
            .stdin(Stdio::null())
            .output()?;
        if !created.status.success() {
            return Err(io::Error::other(format!(
                "createdb failed: {}",
                String::from_utf8_lossy(&created.stderr)
            )));
        }
        Ok(self.url(&name))
    }

    pub fn url(&self, database: &str) -> String {
        flash_servers::postgres::url(self.port, database)
    }

    pub fn log(&self) -> String {
        self.server.log_text()
    }
}
