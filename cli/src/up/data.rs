//! The data folder (`.flash/` by default): what `flash up` keeps between runs, and the lock
//! that keeps two of them from sharing it.
//!
//! ```text
//! .flash/
//!   flash.lock       held while `flash up` runs (its pid inside)
//!   secret           the key that signs sessions (0600), so they survive a restart
//!   redis/           redis-server's --dir: the append-only file, redis.log, redis.pid
//!   postgres/        the PostgreSQL cluster (owned by `nobody` when run as root)
//!   postgres.log
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub struct DataDir {
    /// Absolute: the servers run with other working directories.
    pub path: PathBuf,
    /// Holds the lock until `flash up` ends (the kernel drops it if the process dies).
    _lock: File,
}

impl DataDir {
    /// Creates the folder if needed and locks it.
    pub fn open(path: &Path) -> Result<DataDir> {
        fs::create_dir_all(path)
            .with_context(|| format!("cannot create the data folder {}", path.display()))?;
        let path = fs::canonicalize(path)
            .with_context(|| format!("cannot resolve the data folder {}", path.display()))?;
        let lock_path = path.join("flash.lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        // SAFETY: flock(2) on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            bail!(
                "another `flash up` (pid {}) is using {}: stop it first, or give this one \
                 another --data-dir",
                holder.trim(),
                path.display()
            );
        }
        lock.set_len(0)?;
        lock.rewind()?;
        write!(lock, "{}", std::process::id())?;
        Ok(DataDir { path, _lock: lock })
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The session signing key: made once (32 random bytes, hex) and kept in `secret`, so
    /// a restart does not sign everyone out.
    pub fn secret(&self) -> Result<String> {
        let path = self.join("secret");
        match fs::read_to_string(&path) {
            Ok(text) => {
                let secret = text.trim().to_owned();
                if secret.len() < 32 {
                    bail!(
                        "{} holds fewer than 32 characters: delete it and a new one is made \
                         (everyone signed in will have to sign in again)",
                        path.display()
                    );
                }
                Ok(secret)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                File::open("/dev/urandom")
                    .and_then(|mut random| random.read_exact(&mut bytes))
                    .context("cannot read /dev/urandom for the session secret")?;
                let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
                // Readable by its owner only: whoever reads it can sign sessions as anyone.
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .and_then(|mut file| file.write_all(secret.as_bytes()))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(secret)
            }
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}
