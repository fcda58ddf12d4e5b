//! `cargo xtask deps`: the system packages, installed with apt-get only when missing.
//!
//! A fresh CI machine has Rust and a C compiler but no redis-server and no libclang; the
//! module's bindgen needs libclang and clang's own headers (`stddef.h`), the tests and `up`
//! need redis-server and PostgreSQL, `bench` needs redis-benchmark, the browser test drives a
//! headless Chromium through chromedriver, and `test` checks docker/compose.yaml with
//! Debian's docker-compose (its `config` needs no Docker engine, and none runs on CI). `flash
//! simulate` draws its chart's text with DejaVu Sans, read at run time (so building needs no
//! font development package).
//!
//! [`ensure`] installs all of them (`deps`, `test`, the benchmarks); [`ensure_to_run`] only
//! what building and running the stack needs (`up`): someone who wants to try Flash gets no
//! browser, no docker-compose and no fonts.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::workspace::{run, which};

/// One thing to look for and the Debian package that brings it.
struct Requirement {
    what: &'static str,
    package: &'static str,
    present: fn() -> bool,
    /// `cargo xtask up` needs it (the rest serve the tests and the benchmarks only).
    to_run: bool,
}

const REQUIREMENTS: [Requirement; 10] = [
    Requirement {
        what: "redis-server",
        package: "redis-server",
        present: redis_server_present,
        to_run: true,
    },
    Requirement {
        what: "redis-cli",
        package: "redis-tools",
        present: || which("redis-cli").is_some(),
        to_run: true,
    },
    Requirement {
        what: "redis-benchmark",
        package: "redis-tools",
        present: || which("redis-benchmark").is_some(),
        to_run: false,
    },
    Requirement {
        what: "clang with its headers",
        package: "clang",
        present: clang_with_headers_present,
        to_run: true,
    },
    Requirement {
        what: "libclang (for bindgen)",
        package: "libclang-dev",
        present: libclang_present,
        to_run: true,
    },
    Requirement {
        what: "chromium",
        package: "chromium",
        present: || program_present("CHROMIUM", "chromium"),
        to_run: false,
    },
    Requirement {
        what: "chromedriver",
        package: "chromium-driver",
        present: || program_present("CHROMEDRIVER", "chromedriver"),
        to_run: false,
    },
    Requirement {
        what: "docker-compose",
        package: "docker-compose",
        present: || which("docker-compose").is_some(),
        to_run: false,
    },
    Requirement {
        what: "PostgreSQL (initdb, for `flash up` and the tests)",
        package: "postgresql",
        present: postgres_present,
        to_run: true,
    },
    Requirement {
        what: "the DejaVu Sans font (flash simulate's chart)",
        package: "fonts-dejavu-core",
        present: || Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").is_file(),
        to_run: false,
    },
];

/// Installs whatever the tests, the benchmarks and running need that is missing, or says
/// that nothing is.
pub fn ensure() -> Result<()> {
    install(&REQUIREMENTS.iter().collect::<Vec<_>>())
}

/// Installs only what building and running the stack needs (`cargo xtask up`).
pub fn ensure_to_run() -> Result<()> {
    install(&REQUIREMENTS.iter().filter(|r| r.to_run).collect::<Vec<_>>())
}

fn install(wanted: &[&Requirement]) -> Result<()> {
    let missing: Vec<&Requirement> = wanted.iter().copied().filter(|r| !(r.present)()).collect();
    if missing.is_empty() {
        let all: Vec<&str> = wanted.iter().map(|r| r.what).collect();
        println!("deps: present: {}", all.join(", "));
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|r| r.package).collect();
    packages.dedup();
    let what: Vec<&str> = missing.iter().map(|r| r.what).collect();
    println!(
        "deps: missing {}; installing {}",
        what.join(", "),
        packages.join(" ")
    );
    if which("apt-get").is_none() {
        bail!(
            "apt-get not found: install the packages that provide {} with your system's package \
             manager (on Debian/Ubuntu: {}), then run this again",
            what.join(", "),
            packages.join(" ")
        );
    }
    let sudo = needs_sudo()?;
    run("apt-get update", &mut apt(sudo, &["update"]))?;
    let mut install = apt(sudo, &["install", "-y", "--no-install-recommends"]);
    install.args(&packages);
    run("apt-get install", &mut install)?;

    let still: Vec<&str> = wanted
        .iter()
        .filter(|r| !(r.present)())
        .map(|r| r.what)
        .collect();
    if !still.is_empty() {
        bail!(
            "after installing {} these are still missing: {}; check the apt-get output above",
            packages.join(" "),
            still.join(", ")
        );
    }
    println!("deps: installed {}", packages.join(" "));
    Ok(())
}

/// `apt-get <args>`, non-interactive, through `sudo env` when not root: sudo resets the
/// environment, so DEBIAN_FRONTEND must travel as an argument.
fn apt(sudo: bool, args: &[&str]) -> Command {
    let mut command = if sudo {
        let mut command = Command::new("sudo");
        command.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        command
    } else {
        let mut command = Command::new("apt-get");
        command.env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    command.args(args);
    command
}

fn needs_sudo() -> Result<bool> {
    let output = Command::new("id")
        .arg("-u")
        .output()
        .context("cannot run `id -u` to learn whether this is root")?;
    let euid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if euid == "0" {
        return Ok(false);
    }
    if which("sudo").is_none() {
        bail!("installing packages needs root and sudo is not installed: run this as root");
    }
    Ok(true)
}

fn redis_server_present() -> bool {
    // The harness runs `$REDIS_SERVER` when it is set, so a custom build counts.
    env::var_os("REDIS_SERVER").is_some_and(|path| Path::new(&path).is_file())
        || which("redis-server").is_some()
}

/// `$<variable>` when it names a file (the browser test runs that one instead), else `name` on
/// `$PATH`.
fn program_present(variable: &str, name: &str) -> bool {
    env::var_os(variable).is_some_and(|path| Path::new(&path).is_file()) || which(name).is_some()
}

/// clang on `$PATH` and its resource directory's headers, which bindgen's libclang needs
/// to parse `redismodule.h` (it includes `stddef.h`, `stdint.h`).
fn clang_with_headers_present() -> bool {
    let Some(clang) = which("clang") else {
        return false;
    };
    let Ok(output) = Command::new(clang)
        .arg("-print-resource-dir")
        .stderr(Stdio::null())
        .output()
    else {
        return false;
    };
    let resource_dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    resource_dir.join("include").join("stddef.h").is_file()
}

/// A loadable libclang, where clang-sys (bindgen's loader) looks for one.
fn libclang_present() -> bool {
    if let Some(dir) = env::var_os("LIBCLANG_PATH")
        && dir_has_libclang(Path::new(&dir))
    {
        return true;
    }
    let llvm_dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("llvm-"))
        .map(|entry| entry.path().join("lib"));
    let system_dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ]
    .map(PathBuf::from);
    if llvm_dirs
        .chain(system_dirs)
        .any(|dir| dir_has_libclang(&dir))
    {
        return true;
    }
    Command::new("ldconfig")
        .arg("-p")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| line.split_whitespace().next())
                .any(is_libclang_file)
        })
}

fn dir_has_libclang(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| is_libclang_file(&entry.file_name().to_string_lossy()))
}

/// `libclang.so`, `libclang.so.1`, `libclang-14.so.1`…, but not `libclang-cpp.so` (the C++
/// API, which bindgen cannot use) nor the static `libclangAST.a` and friends.
fn is_libclang_file(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("libclang") else {
        return false;
    };
    match rest.strip_prefix('-') {
        Some(versioned) => {
            let after = versioned.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
            let version = &versioned[..versioned.len() - after.len()];
            version.len() > 1 && version.ends_with('.') && after.starts_with("so")
        }
        None => rest.starts_with(".so"),
    }
}

/// PostgreSQL's server binaries: under `$PG_BIN`, or any version under /usr/lib/postgresql
/// (where Debian puts them; CI machines come with 15). Debian's package also starts a
/// cluster of its own on 5432, which `flash up` (5433) and the tests (free ports) avoid.
fn postgres_present() -> bool {
    env::var_os("PG_BIN").is_some_and(|dir| Path::new(&dir).join("initdb").is_file())
        || std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| entry.path().join("bin/initdb").is_file())
}

#[cfg(test)]
mod tests {
    use super::{REQUIREMENTS, is_libclang_file};

    #[test]
    fn running_needs_the_servers_and_the_module_build_but_not_the_test_tools() {
        let to_run: Vec<&str> = REQUIREMENTS
            .iter()
            .filter(|r| r.to_run)
            .map(|r| r.package)
            .collect();
        for package in [
            "redis-server",
            "redis-tools",
            "clang",
            "libclang-dev",
            "postgresql",
        ] {
            assert!(to_run.contains(&package), "{package} in {to_run:?}");
        }
        for package in [
            "chromium",
            "chromium-driver",
            "docker-compose",
            "fonts-dejavu-core",
        ] {
            assert!(!to_run.contains(&package), "{package} in {to_run:?}");
        }
    }

    #[test]
    fn libclang_names_exclude_the_cpp_api_and_static_archives() {
        for yes in [
            "libclang.so",
            "libclang.so.1",
            "libclang-14.so",
            "libclang-14.so.13",
            "libclang-14.0.6.so",
        ] {
            assert!(is_libclang_file(yes), "{yes}");
        }
        for no in [
            "libclang-cpp.so.14",
            "libclangAST.a",
            "libclang.a",
            "libc.so",
        ] {
            assert!(!is_libclang_file(no), "{no}");
        }
    }
}
