//! wavry-config: what Wavry keeps on disk for a user, and how it reads settings.
//!
//! This crate owns the configuration directory ([`config_dir`], `$WAVRY_CONFIG_DIR` or the
//! platform's per-user directory) and the files in it: the device identity ([`identity`]: the
//! key file's format, its 0600 permissions, atomic writes) and the trust-on-first-use store of
//! peers' keys ([`KnownHosts`]). The keys themselves are rift-crypto's, which stays pure crypto
//! with no file or directory I/O. It also holds the one parser of durations given on the
//! command line or in configuration files ([`parse_duration`]). The TOML configuration file and
//! the token a future `wavry login` stores belong here too.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rift_crypto::identity::IdentityError;

pub mod duration;
pub mod identity;
pub mod known_hosts;

pub use duration::parse_duration;
pub use known_hosts::{KnownHosts, Trust};

/// Environment variable overriding the configuration directory.
pub const CONFIG_DIR_ENV: &str = "WAVRY_CONFIG_DIR";

/// Errors from the identity file, the known-hosts store and the configuration directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Reading or writing `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `path` exists but is not a valid identity / known_hosts file.
    #[error("malformed file {path}: {reason}")]
    Malformed {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The identity file at `path` can be accessed by group or others (unix mode bits `mode`).
    #[error(
        "identity file {path} has insecure permissions {mode:04o} (group/others may access it); \
         restrict it with `chmod 600 {path}`"
    )]
    InsecurePermissions {
        /// The offending file.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// A key is not valid, or no key could be generated (rift-crypto's error, unchanged).
    #[error(transparent)]
    Key(#[from] IdentityError),
    /// A known-hosts name is not valid (empty, contains whitespace, or starts with '#').
    #[error(
        "invalid host name {0:?}: must be non-empty, without whitespace, not starting with '#'"
    )]
    BadName(String),
    /// No configuration directory could be determined (no home directory, and `WAVRY_CONFIG_DIR`
    /// is unset).
    #[error(
        "cannot determine the configuration directory (no home directory); set {CONFIG_DIR_ENV}"
    )]
    NoConfigDir,
}

impl ConfigError {
    fn io(path: &Path, source: io::Error) -> Self {
        ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn malformed(path: &Path, reason: impl Into<String>) -> Self {
        ConfigError::Malformed {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Whether this is an I/O error saying the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConfigError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and files
// ---------------------------------------------------------------------------------------------

/// Wavry's configuration directory: `$WAVRY_CONFIG_DIR` if set, else the platform's (e.g.
/// `~/.config/wavry`). The identity, known hosts and the gateway's default database live here.
pub fn config_dir() -> Result<PathBuf, ConfigError> {
    config_dir_from(std::env::var_os(CONFIG_DIR_ENV))
}

/// The config dir given the value of `WAVRY_CONFIG_DIR` (pure apart from the platform lookup).
pub(crate) fn config_dir_from(env: Option<OsString>) -> Result<PathBuf, ConfigError> {
    match env {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => directories::ProjectDirs::from("", "", "wavry")
            .map(|d| d.config_dir().to_path_buf())
            .ok_or(ConfigError::NoConfigDir),
    }
}

/// Refuse files that group or others can access (unix); a no-op elsewhere.
#[cfg(unix)]
pub(crate) fn check_private_mode(path: &Path, meta: &fs::Metadata) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_private_mode(_path: &Path, _meta: &fs::Metadata) -> Result<(), ConfigError> {
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publish {
    /// Atomically replace any existing file.
    Replace,
    /// Fail with `AlreadyExists` if the destination exists.
    NoClobber,
}

/// Write `contents` to a new mode-0600 temporary file next to `path`, sync it, then move it into
/// place (and sync the directory), so readers see either the old file or the complete new one.
pub(crate) fn write_atomic(
    path: &Path,
    contents: &[u8],
    publish: Publish,
) -> Result<(), ConfigError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let file_name = path
        .file_name()
        .ok_or_else(|| ConfigError::io(path, io::Error::other("path has no file name")))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;

    let mut tmp_name = OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let result = write_new_private(&tmp, contents).and_then(|()| match publish {
        Publish::Replace => fs::rename(&tmp, path).map_err(|e| ConfigError::io(path, e)),
        Publish::NoClobber => publish_no_clobber(&tmp, path),
    });
    // After a successful rename the temporary name is gone; otherwise clean it up.
    let _ = fs::remove_file(&tmp);
    result?;
    sync_dir(&dir);
    Ok(())
}

fn write_new_private(tmp: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp).map_err(|e| ConfigError::io(tmp, e))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| ConfigError::io(tmp, e))
}

/// Move `tmp` to `path` unless `path` exists. A hard link is atomic and never replaces; on file
/// systems without hard links fall back to check-then-rename (a tiny race, no worse).
fn publish_no_clobber(tmp: &Path, path: &Path) -> Result<(), ConfigError> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(ConfigError::io(path, e)),
        Err(_) => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(ConfigError::io(
                    path,
                    io::Error::new(io::ErrorKind::AlreadyExists, "file exists"),
                ));
            }
            fs::rename(tmp, path).map_err(|e| ConfigError::io(path, e))
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| ConfigError::io(dir, e))
}

/// Make the rename durable. Best effort: not every platform can open a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A unique temporary directory, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir().join(format!(
                "wavry-config-{tag}-{}-{nanos}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub(crate) fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    pub(crate) fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[cfg(unix)]
    pub(crate) fn write_with_mode(p: &Path, contents: &[u8], mode: u32) {
        fs::write(p, contents).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_override() {
        assert_eq!(
            config_dir_from(Some(OsString::from("/x/y"))).unwrap(),
            PathBuf::from("/x/y")
        );
        // Empty means unset; whatever the platform gives must end in "wavry" (when it exists).
        if let Ok(d) = config_dir_from(Some(OsString::new())) {
            assert!(d.ends_with("wavry"), "{d:?}");
        }
    }
}
