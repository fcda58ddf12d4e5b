//! A real PostgreSQL: `initdb` into a temp dir, `postgres` on a free loopback port, killed
//! when the guard drops. Each test asks for its own fresh database.
//!
//! `initdb` refuses to run as root, and CI runs as root: then the cluster belongs to the
//! unprivileged `nobody` user, and the server runs as it (the guard still removes it).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::free_port;

/// `nobody`/`nogroup` on Debian: the owner of the cluster when we are root.
const UNPRIVILEGED: u32 = 65534;
/// The superuser initdb creates (trust authentication on loopback: a throwaway cluster).
pub const SUPERUSER: &str = "flash";

pub struct PostgresServer {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PostgresServer {
    /// A throwaway cluster: fsync and synchronous commit off, for tests.
    pub fn start() -> io::Result<PostgresServer> {
        Self::start_with(false)
    }

    /// `durable`: PostgreSQL's default crash safety (fsync, synchronous commit), for
    /// benchmarks whose numbers must mean something.
    pub fn start_with(durable: bool) -> io::Result<PostgresServer> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("flash-pg-").tempdir()?;
        if running_as_root() {
            std::os::unix::fs::chown(dir.path(), Some(UNPRIVILEGED), Some(UNPRIVILEGED))?;
        }
        let data = dir.path().join("data");
        let init = run(as_owner(Command::new(bin.join("initdb")))
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"]))?;
        if !init.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
            )));
        }
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("postgres.log"))?;
        if running_as_root() {
            std::os::unix::fs::chown(dir.path().join("postgres.log"), Some(UNPRIVILEGED), None)?;
        }
        let mut postgres = as_owner(Command::new(bin.join("postgres")));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            .args(["-c", "max_connections=200"]);
        if !durable {
            // A test cluster trades crash safety for speed.
            postgres.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            postgres.args(["-c", "full_page_writes=off"]);
        }
        let child = postgres
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut server = PostgresServer {
            port,
            bin,
            dir,
            child: Some(child),
        };
        server.wait_until_ready()?;
        Ok(server)
    }

    /// A new empty database; returns its URL.
    pub fn create_database(&self) -> io::Result<String> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let created = run(self.client_tool("createdb").arg(&name))?;
        if !created.status.success() {
            return Err(io::Error::other(format!(
                "createdb failed: {}",
                String::from_utf8_lossy(&created.stderr)
            )));
        }
        Ok(self.url(&name))
    }

    /// A PostgreSQL client program (createdb, pg_isready, …) aimed at this server.
    fn client_tool(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin.join(name));
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
        ]);
        command
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn wait_until_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "postgres exited with {status}:\n{}",
                    self.log()
                )));
            }
            let ready = run(&mut self.client_tool("pg_isready"))?;
            if ready.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "postgres on port {} never became ready:\n{}",
                    self.port,
                    self.log()
                )));
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(command: &mut Command) -> io::Result<Output> {
    command.stdin(Stdio::null()).output()
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Runs the command as the cluster's owner: ourselves, or `nobody` when we are root.
fn as_owner(mut command: Command) -> Command {
    if running_as_root() {
        command.uid(UNPRIVILEGED).gid(UNPRIVILEGED);
    }
    command
}

/// `$PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` that has initdb.
fn bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("no PostgreSQL under {}: {e}", root.display()),
            )
        })?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no initdb under /usr/lib/postgresql/*/bin",
        )
    })
}
