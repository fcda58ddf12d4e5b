//! One server as a child process: started with its output in a log, stopped with its own
//! clean-stop signal (waiting up to a timeout, then killed), killed when the guard drops.
//!
//! A supervised server (`flash up`'s) runs in its own process group, so the terminal's
//! Ctrl-C reaches the parent alone: the servers must outlive the edge by a moment, because
//! its worker finishes the batch in hand against both of them. Should the parent die without
//! stopping them (kill -9), the kernel sends each one its stop signal (`PR_SET_PDEATHSIG`),
//! so nothing is left running on its own. The tests' servers stay in the test's group and
//! without that signal: a test may start one from a short-lived thread, whose end would
//! otherwise stop it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

/// How often a wait for the process to exit looks again.
const POLL: Duration = Duration::from_millis(50);

/// Whether the server is tied to its parent's life (see the module's notes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supervision {
    /// Its own process group, stopped by the kernel if the parent dies: `flash up`.
    Supervised,
    /// The parent's process group; killed when the guard drops: the tests.
    Attached,
}

pub struct Server {
    /// What to call it in messages: `redis-server`, `postgres`.
    pub name: &'static str,
    pub pid: u32,
    /// Where its output goes, for the tail shown when it fails.
    pub log: PathBuf,
    child: Child,
    /// The signal that asks it to stop cleanly.
    stop_signal: libc::c_int,
    /// Its exit status once seen (the process is then reaped: its pid may be reused).
    exited: Option<ExitStatus>,
}

/// How a stop went.
pub enum Stopped {
    /// It exited by itself (or after the stop signal) with this status.
    Exited(ExitStatus),
    /// It ignored the stop signal for the whole timeout and was killed.
    Killed,
}

impl Server {
    /// Starts `command` with stdin closed and stdout and stderr appended to `log`.
    /// `stop_signal` stops it cleanly, from [`Server::stop`] (or, supervised, from the
    /// kernel if the parent dies first).
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        stop_signal: libc::c_int,
        supervision: Supervision,
    ) -> Result<Server> {
        let output = append(log)?;
        command
            .stdin(Stdio::null())
            .stdout(
                output
                    .try_clone()
                    .context("cannot duplicate a log handle")?,
            )
            .stderr(output);
        if supervision == Supervision::Supervised {
            command.process_group(0);
            // SAFETY: prctl is async-signal-safe and touches only the new process. It runs
            // after the uid change (std applies uid/gid before pre_exec closures), which
            // would otherwise clear the setting. The signal fires when the thread that
            // spawned the child ends, so `flash up` spawns its servers from the task running
            // it (the main thread under `#[tokio::main]`), never from the blocking pool,
            // whose threads end when idle.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, stop_signal as libc::c_ulong) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Server {
            name,
            pid: child.id(),
            log: log.to_path_buf(),
            child,
            stop_signal,
            exited: None,
        })
    }

    /// Its exit status if it has exited, without waiting.
    pub fn try_exited(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .with_context(|| format!("cannot watch {}", self.name))?;
        }
        Ok(self.exited)
    }

    /// Resolves when it exits (for a `select!` against signals and the other children).
    pub async fn exited(&mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_exited()? {
                return Ok(status);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Asks it to stop with its stop signal and waits up to `timeout`; then kills it.
    pub async fn stop(&mut self, timeout: Duration) -> Result<Stopped> {
        if let Some(status) = self.try_exited()? {
            return Ok(Stopped::Exited(status));
        }
        // Not reaped yet (try_exited saw it running), so the pid is still this process's.
        let pid = libc::pid_t::try_from(self.pid).context("a pid out of range")?;
        // SAFETY: kill(2) on our own, unreaped child; no memory is involved.
        if unsafe { libc::kill(pid, self.stop_signal) } != 0 {
            let error = std::io::Error::last_os_error();
            // ESRCH: it exited between the check and the signal; the wait below reaps it.
            if error.raw_os_error() != Some(libc::ESRCH) {
                return Err(error).with_context(|| format!("cannot signal {}", self.name));
            }
        }
        match tokio::time::timeout(timeout, self.exited()).await {
            Ok(status) => Ok(Stopped::Exited(status?)),
            Err(_) => {
                self.kill();
                Ok(Stopped::Killed)
            }
        }
    }

    /// Kills it now (SIGKILL: a crash, nothing saved) and reaps it.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Its whole log so far (for the tests' failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log, indented, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for Server {
    /// A last resort for `flash up` (which stops its servers cleanly first), the normal end
    /// for a test's.
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log file, indented by two spaces.
fn log_tail(path: &Path, lines: usize) -> String {
    // Only the end is read: the logs grow across runs.
    const TAIL_BYTES: u64 = 64 * 1024;
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let length = file.metadata().map_or(0, |meta| meta.len());
        if file
            .seek(SeekFrom::Start(length.saturating_sub(TAIL_BYTES)))
            .is_ok()
        {
            let _ = file.read_to_end(&mut bytes);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Opens a log for appending: a restart adds to the same file, so the history stays.
fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log {}", path.display()))
}
