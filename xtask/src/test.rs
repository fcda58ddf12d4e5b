//! `cargo xtask test`: the CI gate. Every step streams its output; the first failure stops the
//! run and names the step.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::deps;
use crate::workspace::{Profile, build_module, cargo, root, run, show, target_dir, which};

pub fn run_all() -> Result<()> {
    deps::ensure()?;
    ensure_rust_components()?;
    run(
        "format check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    for compose in ["compose.yaml", "compose.cluster.yaml"] {
        check_compose(&root().join("docker").join(compose))?;
    }
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
    // The worker suite kills `flash worker` as a process; the `flash up` smoke test runs
    // `flash` and signals it; the cli suite runs the operator's commands.
    run("build flash", cargo().args(["build", "-p", "flash-cli"]))?;
    let debug = target_dir()?.join("debug");
    // The suite would otherwise take the newest of debug and release; test the one just built.
    let mut tests = cargo();
    tests
        .args(["test", "--workspace"])
        .env("FLASH_MODULE", &module)
        .env("FLASH_BIN", debug.join("flash"));
    let totals = run_counting(&mut tests)?;
    println!("xtask test: all steps passed (fmt, compose check, clippy, module build, tests)");
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

/// Only interpolated into the compose file, which refuses to resolve without a secret; never
/// used to sign anything.
const COMPOSE_CHECK_SECRET: &str = "compose-check-dummy-secret-not-for-use-0123456789";

/// Checks a compose file without a Docker engine (none runs on our machines or CI): Debian's
/// docker-compose validates it against the Compose schema and resolves it, then every image
/// it builds must name a Dockerfile that exists and a stage in it (`FROM … AS <target>`), so
/// a typo in either fails here rather than at someone's first `docker compose up`.
fn check_compose(compose: &Path) -> Result<()> {
    let mut command = Command::new("docker-compose");
    command
        .env("FLASH_SECRET", COMPOSE_CHECK_SECRET)
        .arg("-f")
        .arg(compose)
        .arg("config");
    let shown = show(&command);
    println!("==> {shown}");
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("step `compose check`: cannot start `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "step `compose check` failed ({}): {shown} (its error is above)",
            output.status
        );
    }
    let resolved = String::from_utf8_lossy(&output.stdout);
    let builds = compose_builds(&resolved);
    if builds.is_empty() {
        bail!(
            "step `compose check`: found no `build:` in what `{shown}` printed; the check \
             cannot tell whether the Dockerfile targets exist"
        );
    }
    let base = compose.parent().unwrap_or(Path::new("."));
    let mut checked = Vec::new();
    for build in &builds {
        let dockerfile = base.join(&build.context).join(&build.dockerfile);
        let text = std::fs::read_to_string(&dockerfile).with_context(|| {
            format!(
                "step `compose check`: {} builds {}, which cannot be read",
                compose.display(),
                dockerfile.display()
            )
        })?;
        if let Some(target) = &build.target {
            let stages = dockerfile_stages(&text);
            if !stages.contains(&target.to_ascii_lowercase()) {
                bail!(
                    "step `compose check`: {} builds target `{target}`, but {} has no stage \
                     of that name (its stages: {})",
                    compose.display(),
                    dockerfile.display(),
                    stages.join(", ")
                );
            }
            checked.push(target.clone());
        }
    }
    checked.sort();
    checked.dedup();
    println!(
        "compose check: {} is valid; its {} builds name existing Dockerfile stages ({})",
        compose.display(),
        builds.len(),
        checked.join(", ")
    );
    Ok(())
}

/// One `build:` of a resolved compose file.
#[derive(Debug, PartialEq, Eq)]
struct ComposeBuild {
    context: String,
    dockerfile: String,
    target: Option<String>,
}

/// The `build:` sections of `docker-compose config`'s output, which has resolved anchors,
/// merges and the short `build: <dir>` form into plain blocks of `context`, `dockerfile`,
/// `target`.
fn compose_builds(resolved: &str) -> Vec<ComposeBuild> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let unquote = |value: &str| {
        value
            .trim()
            .trim_matches(|c| c == '\'' || c == '"')
            .to_owned()
    };
    let mut builds = Vec::new();
    let mut lines = resolved.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(inline) = line.trim().strip_prefix("build:") else {
            continue;
        };
        let mut build = ComposeBuild {
            context: unquote(inline),
            dockerfile: "Dockerfile".to_owned(),
            target: None,
        };
        let depth = indent(line);
        // The build's own keys are its first child's indent; deeper ones belong to `args`
        // and the like.
        let mut key_indent = None;
        while let Some(child) = lines.next_if(|l| l.trim().is_empty() || indent(l) > depth) {
            if child.trim().is_empty() {
                continue;
            }
            if *key_indent.get_or_insert(indent(child)) != indent(child) {
                continue;
            }
            let Some((key, value)) = child.trim().split_once(':') else {
                continue;
            };
            match key {
                "context" => build.context = unquote(value),
                "dockerfile" => build.dockerfile = unquote(value),
                "target" => build.target = Some(unquote(value)),
                _ => {}
            }
        }
        builds.push(build);
    }
    builds
}

/// The stage names of a Dockerfile (`FROM <image> AS <name>`), lowercased as Docker
/// compares them.
fn dockerfile_stages(dockerfile: &str) -> Vec<String> {
    dockerfile
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let from = words.first()?;
            if !from.eq_ignore_ascii_case("FROM") {
                return None;
            }
            let at = words.iter().position(|w| w.eq_ignore_ascii_case("AS"))?;
            Some(words.get(at + 1)?.to_ascii_lowercase())
        })
        .collect()
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
    fn compose_builds_are_read_from_resolved_config() {
        // A nested `target` (a build argument) is not the build's.
        let resolved = r#"services:
  edge:
    build:
      context: /repo
      dockerfile: docker/Dockerfile
      target: flash
    command:
    - edge
  redis:
    build:
      context: '/repo'
      target: "redis"
      args:
        target: nope
    image: r
  plain:
    build: ./here
volumes: {}
"#;
        assert_eq!(
            compose_builds(resolved),
            vec![
                ComposeBuild {
                    context: "/repo".into(),
                    dockerfile: "docker/Dockerfile".into(),
                    target: Some("flash".into()),
                },
                ComposeBuild {
                    context: "/repo".into(),
                    dockerfile: "Dockerfile".into(),
                    target: Some("redis".into()),
                },
                ComposeBuild {
                    context: "./here".into(),
                    dockerfile: "Dockerfile".into(),
                    target: None,
                },
            ]
        );
    }

    #[test]
    fn dockerfile_stages_are_the_named_from_lines() {
        let dockerfile = r#"# syntax=docker/dockerfile:1
FROM rust:1 AS Builder
RUN echo from a AS b
from --platform=$BUILDPLATFORM debian as redis
FROM debian
"#;
        assert_eq!(dockerfile_stages(dockerfile), vec!["builder", "redis"]);
    }

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
