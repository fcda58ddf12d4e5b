//! `cargo xtask test`: the CI gate. Every step streams its output; the first failure stops the
//! run and names the step.

use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::deps;
use crate::workspace::{Profile, build_module, cargo, run, which};

pub fn run_all() -> Result<()> {
    deps::ensure()?;
    ensure_rust_components()?;
    run(
        "format check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let module = build_module(Profile::Debug)?;
    // The suite would otherwise take the newest of debug and release; test the one just built.
    run(
        "tests",
        cargo()
            .args(["test", "--workspace"])
            .env("FLASH_MODULE", &module),
    )?;
    println!("xtask test: all steps passed (fmt, clippy, module build, tests)");
    Ok(())
}

/// rustfmt and clippy are rustup components a minimal toolchain may lack.
fn ensure_rust_components() -> Result<()> {
    let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(subcommand, _)| !cargo_has(subcommand))
        .map(|(_, component)| component)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if which("rustup").is_none() {
        bail!(
            "cargo {} is missing and rustup is not installed: add the {} component(s) to this \
             toolchain",
            missing.join(" / cargo "),
            missing.join(" and ")
        );
    }
    // Inside `cargo run`, RUSTUP_TOOLCHAIN names the toolchain in use, so rustup adds the
    // components to that one.
    let mut add = Command::new("rustup");
    add.args(["component", "add"]).args(&missing);
    run("rustup component add", &mut add)
}

fn cargo_has(subcommand: &str) -> bool {
    cargo()
        .args([subcommand, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
