//! PostgreSQL: a cluster made once by `initdb`, `postgres` on 127.0.0.1 only, and the wait
//! until it answers.
//!
//! PostgreSQL refuses to run as root (and CI runs as root). As root, the cluster belongs to
//! `nobody` and the server runs as the cluster's owner; `nobody` must then be able to reach
//! the folder. Trust authentication on loopback: a single-machine development stack or a
//! throwaway test cluster, reachable from this machine only (and no Unix socket is opened).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio_postgres::NoTls;

use crate::paths::shown;
use crate::process::{Server, Supervision};

/// The superuser initdb creates.
pub const USER: &str = "flash";

/// Server settings that trade crash safety for speed: for throwaway test clusters only.
pub const THROWAWAY: &[&str] = &[
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
];

/// `nobody`/`nogroup` on Debian, when the name cannot be looked up.
const NOBODY: (u32, u32) = (65534, 65534);

pub struct Cluster {
    pub bin: PathBuf,
    pub dir: PathBuf,
    /// True when this call made it.
    pub created: bool,
    /// Who runs the server: None for ourselves, else (uid, gid).
    run_as: Option<(u32, u32)>,
}

/// Finds the binaries and makes the cluster in `dir` unless it exists. `sync`: initdb
/// flushes its files to disk before returning (a throwaway cluster skips it).
pub async fn prepare(dir: &Path, sync: bool) -> Result<Cluster> {
    let bin = bin_dir()?;
    let parent = dir.parent().context("the cluster folder has no parent")?;
    let root = running_as_root();
    if root {
        reachable_by_nobody(parent)?;
    }
    let created = if dir.join("PG_VERSION").is_file() {
        false
    } else {
        init(&bin, dir, root, sync).await?;
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
async fn init(bin: &Path, dir: &Path, root: bool, sync: bool) -> Result<()> {
    let staging = dir.with_extension("init");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove the unfinished {}", staging.display()))?;
    }
    std::fs::create_dir(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let mut command = tokio::process::Command::new(bin.join("initdb"));
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
    if !sync {
        command.arg("--no-sync");
    }
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
    /// Starts `postgres` on 127.0.0.1:`port`, its output appended to `log`, with extra
    /// server `settings` (`name=value`, e.g. [`THROWAWAY`]).
    pub fn spawn(
        &self,
        port: u16,
        log: &Path,
        settings: &[&str],
        supervision: Supervision,
    ) -> Result<Server> {
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
        for setting in settings {
            command.args(["-c", setting]);
        }
        // SIGINT is PostgreSQL's fast shutdown: open transactions roll back, a checkpoint is
        // written, the server exits 0.
        Server::spawn("postgres", command, log, libc::SIGINT, supervision)
    }
}

/// Waits until the server accepts connections, up to `timeout` (crash recovery after a kill
/// may replay some WAL first); returns a connection to its `postgres` database as [`USER`].
pub async fn ready(
    server: &mut Server,
    port: u16,
    timeout: Duration,
) -> Result<tokio_postgres::Client> {
    let admin = format!("host=127.0.0.1 port={port} user={USER} dbname=postgres connect_timeout=5");
    let deadline = Instant::now() + timeout;
    loop {
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
                return Ok(client);
            }
            Err(error) if Instant::now() > deadline => {
                bail!(
                    "postgres on port {port} did not accept connections within {timeout:?} \
                     ({error}); the end of its log ({}):\n{}",
                    shown(&server.log),
                    server.log_tail(15)
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The URL of `database` on the server at `port`, as [`USER`].
pub fn url(port: u16, database: &str) -> String {
    format!("postgres://{USER}@127.0.0.1:{port}/{database}")
}

/// `$PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` that has initdb (Debian's
/// layout; several versions may be installed side by side).
fn bin_dir() -> Result<PathBuf> {
    const MISSING: &str = "install it (`sudo apt-get install postgresql`, or `cargo xtask \
                           deps`), point PG_BIN at its bin folder, or set DATABASE_URL to use a \
                           running server";
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

fn running_as_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

fn nobody() -> (u32, u32) {
    // SAFETY: getpwnam reads a static record; the fields are copied out at once, before any
    // other call could overwrite it (the callers look users up from one thread at a time:
    // `flash up` from its main task, a test while it starts its cluster).
    let entry = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    if entry.is_null() {
        return NOBODY;
    }
    // SAFETY: a non-null entry points to a valid passwd record.
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

/// As root the server runs as `nobody`, who must be able to walk down to the cluster. The
/// folder that holds it is ours, so it gains traversal (not listing) for others when it lacks
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
                "PostgreSQL cannot run as root, so it runs as nobody, who cannot enter {} \
                 (mode {:o}): pass a --data-dir outside it (e.g. /var/tmp/flash), allow \
                 traversal (`chmod o+x {}`), or set DATABASE_URL to use a running PostgreSQL",
                ancestor.display(),
                meta.mode() & 0o7777,
                ancestor.display()
            );
        }
    }
    Ok(())
}
