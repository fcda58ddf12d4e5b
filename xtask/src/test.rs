//! `cargo xtask test`: the CI gate. Every step streams its output; the first failure stops the
//! run and names the step.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::deps;
use crate::workspace::{Profile, build_module, cargo, run, show, target_dir, which};

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
    // The worker suite kills and restarts the worker as a process.
    run(
        "build the worker",
        cargo().args(["build", "-p", "flash-worker"]),
    )?;
    let worker = target_dir()?.join("debug").join("flash-worker");
    // The suite would otherwise take the newest of debug and release; test the one just built.
    let mut tests = cargo();
    tests
        .args(["test", "--workspace"])
        .env("FLASH_MODULE", &module)
        .env("FLASH_WORKER_BIN", &worker);
    let totals = run_counting(&mut tests)?;
    println!("xtask test: all steps passed (fmt, clippy, module build, tests)");
    // One closing line over every test binary (cargo's own last line is its doc-tests').
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    /// Adds a libtest summary line: `test result: ok. 19 passed; 0 failed; …`.
    fn add_line(&mut self, line: &str) {
        let Some(summary) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in summary.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                _ => {}
            }
        }
    }
}

/// Runs `cargo test`, echoing its output, and adds up the summary lines.
fn run_counting(command: &mut Command) -> Result<Totals> {
    println!("xtask: tests: {}", show(command));
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            totals.add_line(&line);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "step 'tests' failed ({status}): {} passed, {} failed",
            totals.passed,
            totals.failed
        );
    }
    Ok(totals)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_add_up() {
        let mut totals = Totals::default();
        totals.add_line("test result: ok. 19 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.35s");
        totals.add_line(
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        totals.add_line("running 19 tests");
        assert_eq!(
            totals,
            Totals {
                passed: 22,
                failed: 2
            }
        );
    }
}
