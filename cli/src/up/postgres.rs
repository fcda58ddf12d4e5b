//! PostgreSQL for `flash up` when DATABASE_URL is unset: a cluster of its own in
//! `<data>/postgres`, made once by `initdb`, served on 127.0.0.1 only.
//!
//! PostgreSQL refuses to run as root. As root, the cluster belongs to `nobody` and the
//! server runs as the cluster's owner; `nobody` must then be able to reach the folder.
//! Trust authentication on loopback: this is a single-machine development stack, reachable
//! from this machine only (and no Unix socket is opened).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::Command;
use tokio_postgres::NoTls;

use super::child::Server;
use super::data::{running_as_root, shown};

/// The superuser initdb creates, and the database the stack uses.
pub const USER: &str = "flash";
pub const DATABASE: &str = "flash";
/// Crash recovery after a kill may replay some WAL first.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `nobody`/`nogroup` on Debian, when the name cannot be looked up.
const NOBODY: (u32, u32) = (65534, 65534);

pub struct Cluster {
    pub bin: PathBuf,
    pub dir: PathBuf,
    /// True when this run made it.
    pub created: bool,
    /// Who runs the server: None for ourselves, else (uid, gid).
    run_as: Option<(u32, u32)>,
}

/// Finds the binaries and makes the cluster in `dir` unless it exists.
pub async fn prepare(dir: &Path) -> Result<Cluster> {
    let bin = bin_dir()?;
    let parent = dir.parent().context("the cluster folder has no parent")?;
    let root = running_as_root();
    if root {
        reachable_by_nobody(parent)?;
    }
    let created = if dir.join("PG_VERSION").is_file() {
        false
    } else {
        init(&bin, dir, root).await?;
        true
    };
    let run_as = if root {
        // The cluster's owner: `nobody` for clusters made here as root.
        let meta = std::fs::metadata(dir)
            .with_context(|| format!("cannot read the cluster folder {}", dir.display()))?;
        if meta.uid() == 0 {
            bail!(
                "{} belongs to root, and PostgreSQL refuses to run as root: delete it (its \
                 data is lost) and `flash up` makes a new one owned by nobody",
                dir.display()
            );
        }
        Some((meta.uid(), meta.gid()))
    } else {
        None
    };
    Ok(Cluster {
        bin,
        dir: dir.to_path_buf(),
        created,
        run_as,
    })
}

/// `initdb` into a sibling folder, renamed into place once complete: an interrupted first
/// run leaves no half-made cluster for the next one to trip on.
async fn init(bin: &Path, dir: &Path, root: bool) -> Result<()> {
    let staging = dir.with_extension("init");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove the unfinished {}", staging.display()))?;
    }
    std::fs::create_dir(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let mut command = Command::new(bin.join("initdb"));
    if root {
        let (uid, gid) = nobody();
        std::os::unix::fs::chown(&staging, Some(uid), Some(gid))
            .with_context(|| format!("cannot give {} to nobody", staging.display()))?;
        command.uid(uid).gid(gid);
    }
    command
        .arg("-D")
        .arg(&staging)
        .args(["-U", USER, "--auth=trust", "-E", "UTF8"])
        // The C locale exists everywhere; a LANG naming a locale that was never generated
        // would make initdb fail.
        .arg("--no-locale")
        .current_dir(dir.parent().unwrap_or(Path::new("/")))
        .stdin(std::process::Stdio::null())
        // A Ctrl-C while it runs drops this future: initdb must not go on alone (the
        // unfinished folder is cleared by the next run).
        .kill_on_drop(true);
    let output = command
        .output()
        .await
        .with_context(|| format!("cannot run {}", bin.join("initdb").display()))?;
    if !output.status.success() {
        bail!(
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&staging, dir)
        .with_context(|| format!("cannot move {} to {}", staging.display(), dir.display()))
}

impl Cluster {
    /// Starts `postgres` on 127.0.0.1:`port`, its output appended to `log`.
    pub fn spawn(&self, port: u16, log: &Path) -> Result<Server> {
        let mut command = Command::new(self.bin.join("postgres"));
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
            .arg("-D")
            .arg(&self.dir)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            // TCP only: a socket path under a deep data folder can pass the 107-byte limit,
            // and the default socket folder may not be writable by `nobody`.
            .args(["-c", "unix_socket_directories="])
            .current_dir(&self.dir);
        // SIGINT is PostgreSQL's fast shutdown: open transactions roll back, a checkpoint is
        // written, the server exits 0.
        Server::spawn("postgres", command, log, libc::SIGINT)
    }
}

/// Waits until the server accepts connections, creates the database once; returns the
/// server's version.
pub async fn ready(server: &mut Server, port: u16) -> Result<String> {
    let admin = format!("host=127.0.0.1 port={port} user={USER} dbname=postgres connect_timeout=5");
    let deadline = Instant::now() + START_TIMEOUT;
    let pg = loop {
        if let Some(status) = server.try_exited()? {
            bail!(
                "postgres exited at start ({status}); the end of its log ({}):\n{}",
                shown(&server.log),
                server.log_tail(15)
            );
        }
        // While it starts it refuses with "the database system is starting up".
        match tokio_postgres::connect(&admin, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                break client;
            }
            Err(error) if Instant::now() > deadline => {
                bail!(
                    "postgres did not accept connections within {START_TIMEOUT:?} ({error}); \
                     the end of its log ({}):\n{}",
                    shown(&server.log),
                    server.log_tail(15)
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let exists = pg
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await?
        .is_some();
    if !exists {
        pg.batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .context("cannot create the database")?;
    }
    let version: String = pg.query_one("SHOW server_version", &[]).await?.get(0);
    Ok(version.split_whitespace().next().unwrap_or("?").to_owned())
}

pub fn url(port: u16) -> String {
    format!("postgres://{USER}@127.0.0.1:{port}/{DATABASE}")
}

/// `$PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` that has initdb (Debian's
/// layout; several versions may be installed side by side).
fn bin_dir() -> Result<PathBuf> {
    const MISSING: &str = "install it (`sudo apt-get install postgresql`), point PG_BIN at \
                           its bin folder, or set DATABASE_URL to use a running server";
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        if !dir.join("initdb").is_file() {
            bail!("PG_BIN={} has no initdb: {MISSING}", dir.display());
        }
        return Ok(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin): {MISSING}"
        ),
    }
}

fn nobody() -> (u32, u32) {
    // SAFETY: getpwnam reads a static record; the fields are copied out at once, before any
    // other call could overwrite it (`flash up` looks users up from this thread only).
    let entry = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    if entry.is_null() {
        return NOBODY;
    }
    // SAFETY: a non-null entry points to a valid passwd record.
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

/// As root the server runs as `nobody`, who must be able to walk down to the cluster. The
/// data folder itself is ours, so it gains traversal (not listing) for others when it lacks
/// it (temp folders are 0700); a parent that blocks the way is named with what to do.
fn reachable_by_nobody(data: &Path) -> Result<()> {
    let meta = std::fs::metadata(data)?;
    if meta.mode() & 0o001 == 0 {
        let mut permissions = meta.permissions();
        permissions.set_mode(meta.mode() | 0o001);
        std::fs::set_permissions(data, permissions)
            .with_context(|| format!("cannot let nobody traverse {}", data.display()))?;
    }
    for ancestor in data.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor)
            .with_context(|| format!("cannot read {}", ancestor.display()))?;
        if meta.mode() & 0o001 == 0 {
            bail!(
                "PostgreSQL cannot run as root, so `flash up` runs it as nobody, who cannot \
                 enter {} (mode {:o}): pass a --data-dir outside it (e.g. /var/tmp/flash), \
                 allow traversal (`chmod o+x {}`), or set DATABASE_URL to use a running \
                 PostgreSQL",
                ancestor.display(),
                meta.mode() & 0o7777,
                ancestor.display()
            );
        }
    }
    Ok(())
}
