//! Where the built module is, and paths as a user would type them.

use std::path::{Path, PathBuf};

/// The module's file name, as cargo builds it (beside the binaries of the same profile).
pub const MODULE_FILE: &str = "libflash_module.so";

/// `$FLASH_MODULE` when set, else the newest [`MODULE_FILE`] in `dirs` (e.g. a target's
/// `debug` and `release` folders, or the folder of the running program).
pub fn find_module(dirs: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FLASH_MODULE") {
        return Some(PathBuf::from(path));
    }
    dirs.into_iter()
        .map(|dir| dir.join(MODULE_FILE))
        .filter_map(|path| Some((path.metadata().ok()?.modified().ok()?, path)))
        .max()
        .map(|(_, path)| path)
}

/// `path` as the user would type it: relative to the working directory when inside it.
pub fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|relative| !relative.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
