//! Paths of the workspace and the child processes every task runs.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use flash_tests::MODULE_FILE;

/// The workspace root: children run there, whatever directory `cargo xtask` was called from.
pub fn root() -> PathBuf {
    flash_tests::workspace_root()
}

/// The cargo that runs xtask, so children use the same toolchain.
pub fn cargo() -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(root());
    // Children run in the root, where a relative CARGO_TARGET_DIR would name another place.
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR")
        && !dir.is_empty()
        && Path::new(&dir).is_relative()
        && let Ok(absolute) = target_dir()
    {
        command.env("CARGO_TARGET_DIR", absolute);
    }
    command
}

/// `$CARGO_TARGET_DIR` or `<root>/target`. A relative `CARGO_TARGET_DIR` is resolved against
/// the caller's directory, as cargo resolves it, not against the root the children run in.
pub fn target_dir() -> Result<PathBuf> {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                Ok(dir)
            } else {
                Ok(env::current_dir()
                    .context("cannot read the current directory")?
                    .join(dir))
            }
        }
        _ => Ok(root().join("target")),
    }
}

#[derive(Clone, Copy)]
pub enum Profile {
    Debug,
    Release,
}

/// Builds flash-module and returns the absolute path of its `.so`.
pub fn build_module(profile: Profile) -> Result<PathBuf> {
    let mut command = cargo();
    command.args(["build", "-p", "flash-module"]);
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => {
            command.arg("--release");
            "release"
        }
    };
    let target = target_dir()?;
    run("build the module", &mut command)?;
    let module = target.join(dir).join(MODULE_FILE);
    if !module.is_file() {
        bail!(
            "`cargo build -p flash-module` succeeded but {} is missing: is module/ a cdylib \
             named flash_module?",
            module.display()
        );
    }
    Ok(module)
}

/// Builds the module API's floor (module/examples/api_floor.rs, release); returns its path.
pub fn build_api_floor() -> Result<PathBuf> {
    let mut command = cargo();
    command.args([
        "build",
        "-p",
        "flash-module",
        "--example",
        "api_floor",
        "--release",
    ]);
    run("build the module API's floor", &mut command)?;
    let floor = target_dir()?
        .join("release")
        .join("examples")
        .join("libapi_floor.so");
    if !floor.is_file() {
        bail!(
            "`cargo build --example api_floor` succeeded but {} is missing",
            floor.display()
        );
    }
    Ok(floor)
}

/// What `cargo xtask up` runs: the module and the `flash` program, built in one step.
pub struct Stack {
    pub module: PathBuf,
    pub flash: PathBuf,
}

/// Builds flash-module and flash-cli's `flash` in release mode; returns their absolute
/// paths.
pub fn build_release_stack() -> Result<Stack> {
    let target = target_dir()?.join("release");
    run(
        "build the module and flash",
        cargo().args([
            "build",
            "--release",
            "-p",
            "flash-module",
            "-p",
            "flash-cli",
        ]),
    )?;
    let stack = Stack {
        module: target.join(MODULE_FILE),
        flash: target.join("flash"),
    };
    for built in [&stack.module, &stack.flash] {
        if !built.is_file() {
            bail!(
                "`cargo build --release -p flash-module -p flash-cli` succeeded but {} is \
                 missing",
                built.display()
            );
        }
    }
    Ok(stack)
}

/// Runs a step with its output streamed to the terminal; an error names the step.
pub fn run(step: &str, command: &mut Command) -> Result<()> {
    let shown = show(command);
    println!("==> {shown}");
    let status = command
        .status()
        .with_context(|| format!("step `{step}`: cannot start `{shown}`"))?;
    if !status.success() {
        bail!("step `{step}` failed ({status}): {shown}");
    }
    Ok(())
}

/// A command line as a user would type it (environment overrides first).
pub fn show(command: &Command) -> String {
    let mut words: Vec<String> = command
        .get_envs()
        .filter_map(|(key, value)| {
            let value = value?;
            Some(format!(
                "{}={}",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            ))
        })
        .collect();
    let program = Path::new(command.get_program());
    // Show `cargo`, not the toolchain's absolute path from $CARGO.
    let name = match program.file_name() {
        Some(name) if name == "cargo" => name.to_string_lossy(),
        _ => program.as_os_str().to_string_lossy(),
    };
    words.push(name.into_owned());
    words.extend(command.get_args().map(|arg| quote(&arg.to_string_lossy())));
    words.join(" ")
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The executable `name` on `$PATH` (what `command -v` finds).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A field of an INFO section (`name:value` lines).
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_leaves_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("flash:{spring}:stock"), "'flash:{spring}:stock'");
        assert_eq!(quote("--release"), "--release");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn info_field_reads_one_line() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("7.0.15"));
        assert_eq!(info_field(info, "missing"), None);
    }
}
