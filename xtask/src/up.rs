//! `cargo xtask up`: run it. Installs the missing system packages running needs (not the
//! tests' browser, docker-compose or fonts), builds the module and the `flash` program in
//! release mode, then becomes `flash up --module <the module>` in the workspace root (data in
//! `.flash/`), with any further arguments passed along: `cargo xtask up -- --http-port 8001`.
//!
//! xtask replaces itself with `flash` (exec) rather than waiting for it as a child: the
//! terminal's Ctrl-C and a SIGTERM to this pid then reach `flash` alone, which stops its
//! servers in order, and no parent is left to be killed by the same signal, or to outlive
//! it. (`cargo run` execs xtask the same way, so the pid a user sees is `flash`'s.)

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Result, anyhow};

use crate::deps;
use crate::workspace::{build_release_stack, root, show};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Arguments for `flash up`, after `--` (`cargo xtask up -- --help` lists them).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "FLASH_UP_ARGS"
    )]
    args: Vec<OsString>,
}

pub fn run(args: &UpArgs) -> Result<()> {
    deps::ensure_to_run()?;
    let built = build_release_stack()?;
    let mut command = Command::new(&built.flash);
    command
        .arg("up")
        .arg("--module")
        .arg(&built.module)
        .args(&args.args)
        .current_dir(root());
    println!("==> {}", show(&command));
    // exec replaces the process: what was printed must be out first.
    let _ = std::io::stdout().flush();
    let error = command.exec();
    Err(anyhow!(error).context(format!("cannot run {}", built.flash.display())))
}
