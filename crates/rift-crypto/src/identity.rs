//! Device identities: the static X25519 keypair a device authenticates with in the Noise_XX
//! handshake, the short fingerprint humans compare, and the trust-on-first-use store of peers'
//! keys (`known_hosts`).
//!
//! Everything here is pure except the explicit file functions ([`Identity::load`],
//! [`Identity::load_or_create`], [`Identity::save`], [`Identity::save_new`], [`KnownHosts::load`],
//! [`KnownHosts::remember`]) and [`Identity::generate`], which reads OS randomness.
//!
//! Identity file format (text): the line `wavry-identity-v1`, then the 32-byte secret in standard
//! padded base64, then a newline; CRLF is tolerated. The file must not be accessible to group or
//! others (mode 0600 on unix); it is always written to a temporary file in the same directory,
//! synced, then moved into place, so a crash never leaves a half-written key.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use blake2::{Blake2s256, Digest};
use data_encoding::{BASE32_NOPAD, BASE64};
use zeroize::Zeroizing;

/// Length of an X25519 key (secret or public), in bytes.
pub const KEY_LEN: usize = 32;

/// First line of an identity file.
const IDENTITY_HEADER: &str = "wavry-identity-v1";
/// Domain separation for fingerprints.
const FINGERPRINT_CONTEXT: &[u8] = b"wavry fingerprint v1";
/// Bytes of the BLAKE2s digest kept in a fingerprint (80 bits = 16 base32 characters).
const FINGERPRINT_LEN: usize = 10;
/// Environment variable overriding the configuration directory.
pub const CONFIG_DIR_ENV: &str = "WAVRY_CONFIG_DIR";
/// File name of the identity inside the configuration directory.
const IDENTITY_FILE: &str = "identity.key";
/// File name of the trust-on-first-use store inside the configuration directory.
const KNOWN_HOSTS_FILE: &str = "known_hosts";
/// An identity file is ~64 bytes; anything much larger is not one (and is not read whole).
const MAX_IDENTITY_FILE: u64 = 4096;
/// Upper bound for a known_hosts file (tens of thousands of entries).
const MAX_KNOWN_HOSTS_FILE: u64 = 4 << 20;

/// Errors from identities and the known-hosts store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
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
    /// A key or fingerprint given as bytes or text is not valid.
    #[error("invalid key: {0}")]
    BadKey(String),
    /// A known-hosts name is not valid (empty, contains whitespace, or starts with '#').
    #[error(
        "invalid host name {0:?}: must be non-empty, without whitespace, not starting with '#'"
    )]
    BadName(String),
    /// The operating system's random number generator failed.
    #[error("OS random number generator failed: {0}")]
    Random(String),
    /// No configuration directory could be determined (no home directory, and `WAVRY_CONFIG_DIR`
    /// is unset).
    #[error(
        "cannot determine the configuration directory (no home directory); set {CONFIG_DIR_ENV}"
    )]
    NoConfigDir,
}

impl IdentityError {
    fn io(path: &Path, source: io::Error) -> Self {
        IdentityError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn malformed(path: &Path, reason: impl Into<String>) -> Self {
        IdentityError::Malformed {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Whether this is an I/O error saying the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, IdentityError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

// ---------------------------------------------------------------------------------------------
// Public keys and fingerprints
// ---------------------------------------------------------------------------------------------

/// An X25519 public key (a device's static Noise key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// A public key from exactly [`KEY_LEN`] bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, IdentityError> {
        let bytes: [u8; KEY_LEN] = b.try_into().map_err(|_| {
            IdentityError::BadKey(format!(
                "public key is {} bytes, expected {KEY_LEN}",
                b.len()
            ))
        })?;
        Ok(PublicKey(bytes))
    }

    /// The key's short, human-comparable fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Blake2s256::new();
        h.update(FINGERPRINT_CONTEXT);
        h.update(self.0);
        let digest = h.finalize();
        let mut fp = [0u8; FINGERPRINT_LEN];
        fp.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        Fingerprint(fp)
    }

    /// Standard, padded base64 (44 characters).
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    /// Parse standard, padded base64 (surrounding whitespace is ignored).
    pub fn from_base64(s: &str) -> Result<Self, IdentityError> {
        let bytes = BASE64
            .decode(s.trim().as_bytes())
            .map_err(|e| IdentityError::BadKey(format!("public key is not valid base64: {e}")))?;
        Self::from_slice(&bytes)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// Short, human-comparable digest of a public key: the first 10 bytes of
/// BLAKE2s-256("wavry fingerprint v1" || key), shown as 16 base32 characters (RFC 4648 alphabet,
/// no padding) in four groups: `ABCD-EFGH-IJKL-MNOP`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// The raw 10 digest bytes.
    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = BASE32_NOPAD.encode(&self.0);
        debug_assert_eq!(s.len(), 16);
        write!(f, "{}-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = IdentityError;

    /// Accepts `ABCD-EFGH-IJKL-MNOP` or `ABCDEFGHIJKLMNOP`, case-insensitive; surrounding
    /// whitespace is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s
            .trim()
            .chars()
            .filter(|&c| c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if compact.len() != 16 {
            return Err(IdentityError::BadKey(format!(
                "fingerprint {s:?} has {} base32 characters, expected 16",
                compact.chars().count()
            )));
        }
        let bytes = BASE32_NOPAD
            .decode(compact.as_bytes())
            .map_err(|e| IdentityError::BadKey(format!("fingerprint {s:?} is not base32: {e}")))?;
        let arr: [u8; FINGERPRINT_LEN] = bytes.try_into().map_err(|_| {
            IdentityError::BadKey(format!("fingerprint {s:?} has the wrong length"))
        })?;
        Ok(Fingerprint(arr))
    }
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

/// A device's static keypair. The secret is zeroized on drop and never printed by `Debug`.
pub struct Identity {
    secret: Zeroizing<[u8; KEY_LEN]>,
    public: PublicKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Identity {
    /// A fresh identity from the operating system's random number generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(&mut secret[..]).map_err(|e| IdentityError::Random(e.to_string()))?;
        Ok(Self::from_secret(*secret))
    }

    /// The identity with this X25519 secret. The bytes are kept as given; clamping is applied
    /// when the key is used (as x25519-dalek and snow do), and public = X25519(secret, 9).
    pub fn from_secret(secret: [u8; KEY_LEN]) -> Self {
        let secret = Zeroizing::new(secret);
        // StaticSecret zeroizes itself on drop.
        let dalek = x25519_dalek::StaticSecret::from(*secret);
        let public = PublicKey(x25519_dalek::PublicKey::from(&dalek).to_bytes());
        Identity { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The secret half, for snow's `Builder::local_private_key`.
    pub fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }

    /// Fingerprint of the public key.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }

    /// Default location: `<config dir>/identity.key`, where the config dir is `$WAVRY_CONFIG_DIR`
    /// if set and non-empty, else the platform's per-user config dir for "wavry"
    /// (`$XDG_CONFIG_HOME/wavry` or `~/.config/wavry` on Linux).
    pub fn default_path() -> Result<PathBuf, IdentityError> {
        Ok(config_dir()?.join(IDENTITY_FILE))
    }

    /// Load the identity at `path`, or create a new one there (creating missing parent
    /// directories with mode 0700) if there is no file. Returns whether it was created.
    ///
    /// Never replaces an existing file: if another process creates one concurrently, that one is
    /// loaded. An existing file that is malformed or accessible by group/others is an error.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), IdentityError> {
        match Self::load(path) {
            Ok(id) => return Ok((id, false)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let id = Self::generate()?;
        match id.save_new(path) {
            Ok(()) => Ok((id, true)),
            // Lost a race with another process creating it: use theirs.
            Err(IdentityError::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists =>
            {
                Ok((Self::load(path)?, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Load the identity at `path`. Refuses files accessible by group/others (unix) and
    /// malformed files; a missing file is an [`IdentityError::Io`] with kind `NotFound`
    /// (see [`IdentityError::is_not_found`]).
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let file = File::open(path).map_err(|e| IdentityError::io(path, e))?;
        let meta = file.metadata().map_err(|e| IdentityError::io(path, e))?;
        if !meta.is_file() {
            return Err(IdentityError::malformed(path, "not a regular file"));
        }
        check_private_mode(path, &meta)?;
        let mut buf = Zeroizing::new(Vec::with_capacity(128));
        file.take(MAX_IDENTITY_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| IdentityError::io(path, e))?;
        if buf.len() as u64 > MAX_IDENTITY_FILE {
            return Err(IdentityError::malformed(
                path,
                format!("larger than {MAX_IDENTITY_FILE} bytes; not an identity file"),
            ));
        }
        Self::decode(&buf).map_err(|reason| IdentityError::malformed(path, reason))
    }

    /// Write this identity to `path`, atomically replacing any existing file (mode 0600; missing
    /// parent directories are created with mode 0700).
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        write_atomic(path, self.encode().as_bytes(), Publish::Replace)
    }

    /// Write this identity to `path` only if no file exists there; otherwise fails with an
    /// [`IdentityError::Io`] of kind `AlreadyExists` and leaves the existing file alone.
    pub fn save_new(&self, path: &Path) -> Result<(), IdentityError> {
        write_atomic(path, self.encode().as_bytes(), Publish::NoClobber)
    }

    /// The identity file contents.
    fn encode(&self) -> Zeroizing<String> {
        let b64 = Zeroizing::new(BASE64.encode(&self.secret[..]));
        Zeroizing::new(format!("{IDENTITY_HEADER}\n{}\n", b64.as_str()))
    }

    /// Parse identity file contents; the error is a human-readable reason.
    fn decode(contents: &[u8]) -> Result<Self, String> {
        if contents.is_empty() {
            return Err("file is empty".into());
        }
        let text = std::str::from_utf8(contents).map_err(|_| "not UTF-8 text".to_string())?;
        let mut lines = text.lines(); // splits on \n, strips a trailing \r
        let header = lines.next().unwrap_or("").trim_end();
        if header != IDENTITY_HEADER {
            return Err(if header.starts_with("wavry-identity-") {
                format!("unsupported format {header:?} (this build reads {IDENTITY_HEADER:?})")
            } else {
                format!("first line is not {IDENTITY_HEADER:?}")
            });
        }
        let key_line = lines
            .next()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| "missing the secret key line".to_string())?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("unexpected content after the secret key line".into());
        }
        let bytes = Zeroizing::new(
            BASE64
                .decode(key_line.as_bytes())
                .map_err(|e| format!("secret key is not valid base64: {e}"))?,
        );
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "secret key is {} bytes, expected {KEY_LEN}",
                bytes.len()
            ));
        }
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        secret.copy_from_slice(&bytes);
        Ok(Self::from_secret(*secret))
    }
}

// ---------------------------------------------------------------------------------------------
// Known hosts (trust on first use)
// ---------------------------------------------------------------------------------------------

/// Trust-on-first-use store: one line per peer, `<name> <base64 public key>`, where the name is
/// what the user connected to (e.g. `192.0.2.7:4444` or a host name), matched exactly. Lines
/// starting with `#` and blank lines are ignored (and not preserved when the file is rewritten);
/// if a name appears twice, the last line wins.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<(String, PublicKey)>,
}

/// How a peer's key compares with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The name is stored with this key.
    Known,
    /// The name is not in the store.
    New,
    /// The name is stored with a different key: possibly an impersonation.
    Changed {
        /// The key stored for the name.
        previous: PublicKey,
    },
}

impl KnownHosts {
    /// Default location: `<config dir>/known_hosts` (see [`Identity::default_path`]).
    pub fn default_path() -> Result<PathBuf, IdentityError> {
        Ok(config_dir()?.join(KNOWN_HOSTS_FILE))
    }

    /// Load the store at `path`; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let mut buf = Vec::new();
        match File::open(path) {
            Ok(f) => {
                f.take(MAX_KNOWN_HOSTS_FILE + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| IdentityError::io(path, e))?;
                if buf.len() as u64 > MAX_KNOWN_HOSTS_FILE {
                    return Err(IdentityError::malformed(
                        path,
                        format!("larger than {MAX_KNOWN_HOSTS_FILE} bytes"),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(IdentityError::io(path, e)),
        }
        let entries = Self::parse(&buf).map_err(|reason| IdentityError::malformed(path, reason))?;
        Ok(KnownHosts {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Compare `key` with what is stored for `name`.
    pub fn check(&self, name: &str, key: &PublicKey) -> Trust {
        match self.get(name) {
            None => Trust::New,
            Some(k) if k == *key => Trust::Known,
            Some(previous) => Trust::Changed { previous },
        }
    }

    /// Store `key` for `name` (replacing any existing entry for it) and rewrite the file
    /// atomically with mode 0600. On error the in-memory store is unchanged.
    pub fn remember(&mut self, name: &str, key: PublicKey) -> Result<(), IdentityError> {
        validate_name(name)?;
        let mut entries = self.entries.clone();
        match entries.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = key,
            None => entries.push((name.to_string(), key)),
        }
        write_atomic(
            &self.path,
            Self::serialize(&entries).as_bytes(),
            Publish::Replace,
        )?;
        self.entries = entries;
        Ok(())
    }

    /// The key stored for `name`.
    pub fn get(&self, name: &str) -> Option<PublicKey> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| *k)
    }

    /// The stored entries, in file order.
    pub fn entries(&self) -> &[(String, PublicKey)] {
        &self.entries
    }

    /// The file this store was loaded from and is written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parse(contents: &[u8]) -> Result<Vec<(String, PublicKey)>, String> {
        let text = std::str::from_utf8(contents).map_err(|_| "not UTF-8 text".to_string())?;
        let mut entries: Vec<(String, PublicKey)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(name), Some(key), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!(
                    "line {}: expected \"<name> <base64 public key>\"",
                    i + 1
                ));
            };
            let key = PublicKey::from_base64(key).map_err(|e| format!("line {}: {e}", i + 1))?;
            match entries.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = key,
                None => entries.push((name.to_string(), key)),
            }
        }
        Ok(entries)
    }

    fn serialize(entries: &[(String, PublicKey)]) -> String {
        let mut out = String::from(
            "# wavry known hosts (trust on first use): <name> <base64 X25519 public key>\n",
        );
        for (name, key) in entries {
            out.push_str(name);
            out.push(' ');
            out.push_str(&key.to_base64());
            out.push('\n');
        }
        out
    }
}

fn validate_name(name: &str) -> Result<(), IdentityError> {
    if name.is_empty() || name.starts_with('#') || name.chars().any(char::is_whitespace) {
        return Err(IdentityError::BadName(name.to_string()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Paths and files
// ---------------------------------------------------------------------------------------------

/// Wavry's configuration directory: `$WAVRY_CONFIG_DIR` if set, else the platform's (e.g.
/// `~/.config/wavry`). The identity, known hosts and the gateway's default database live here.
pub fn config_dir() -> Result<PathBuf, IdentityError> {
    config_dir_from(std::env::var_os(CONFIG_DIR_ENV))
}

/// The config dir given the value of `WAVRY_CONFIG_DIR` (pure apart from the platform lookup).
fn config_dir_from(env: Option<OsString>) -> Result<PathBuf, IdentityError> {
    match env {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => directories::ProjectDirs::from("", "", "wavry")
            .map(|d| d.config_dir().to_path_buf())
            .ok_or(IdentityError::NoConfigDir),
    }
}

/// Refuse files that group or others can access (unix); a no-op elsewhere.
#[cfg(unix)]
fn check_private_mode(path: &Path, meta: &fs::Metadata) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path, _meta: &fs::Metadata) -> Result<(), IdentityError> {
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// Atomically replace any existing file.
    Replace,
    /// Fail with `AlreadyExists` if the destination exists.
    NoClobber,
}

/// Write `contents` to a new mode-0600 temporary file next to `path`, sync it, then move it into
/// place (and sync the directory), so readers see either the old file or the complete new one.
fn write_atomic(path: &Path, contents: &[u8], publish: Publish) -> Result<(), IdentityError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let file_name = path
        .file_name()
        .ok_or_else(|| IdentityError::io(path, io::Error::other("path has no file name")))?;
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
        Publish::Replace => fs::rename(&tmp, path).map_err(|e| IdentityError::io(path, e)),
        Publish::NoClobber => publish_no_clobber(&tmp, path),
    });
    // After a successful rename the temporary name is gone; otherwise clean it up.
    let _ = fs::remove_file(&tmp);
    result?;
    sync_dir(&dir);
    Ok(())
}

fn write_new_private(tmp: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp).map_err(|e| IdentityError::io(tmp, e))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| IdentityError::io(tmp, e))
}

/// Move `tmp` to `path` unless `path` exists. A hard link is atomic and never replaces; on file
/// systems without hard links fall back to check-then-rename (a tiny race, no worse).
fn publish_no_clobber(tmp: &Path, path: &Path) -> Result<(), IdentityError> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(IdentityError::io(path, e)),
        Err(_) => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(IdentityError::io(
                    path,
                    io::Error::new(io::ErrorKind::AlreadyExists, "file exists"),
                ));
            }
            fs::rename(tmp, path).map_err(|e| IdentityError::io(path, e))
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| IdentityError::io(dir, e))
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

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A unique temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir().join(format!(
                "rift-crypto-identity-{tag}-{}-{nanos}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn hex32(s: &str) -> [u8; 32] {
        let v = data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap();
        v.try_into().unwrap()
    }

    #[cfg(unix)]
    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[cfg(unix)]
    fn write_with_mode(p: &Path, contents: &[u8], mode: u32) {
        fs::write(p, contents).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn rfc7748_vector() {
        // RFC 7748 §6.1, Alice.
        let id = Identity::from_secret(hex32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        assert_eq!(
            id.public().0,
            hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        // The secret is kept as given (unclamped), as snow expects.
        assert_eq!(
            id.secret(),
            &hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        );
        // Bob, for good measure.
        let bob = Identity::from_secret(hex32(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            bob.public().0,
            hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
    }

    /// snow, given our secret, must present our public key to the peer.
    #[test]
    fn snow_agrees_on_public_key() {
        let params: snow::params::NoiseParams =
            "Noise_XX_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let mut ini = snow::Builder::new(params.clone())
            .local_private_key(a.secret())
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut res = snow::Builder::new(params)
            .local_private_key(b.secret())
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut msg, mut out) = ([0u8; 256], [0u8; 256]);
        let n = ini.write_message(&[], &mut msg).unwrap();
        res.read_message(&msg[..n], &mut out).unwrap();
        let n = res.write_message(&[], &mut msg).unwrap();
        ini.read_message(&msg[..n], &mut out).unwrap();
        let n = ini.write_message(&[], &mut msg).unwrap();
        res.read_message(&msg[..n], &mut out).unwrap();
        assert_eq!(res.get_remote_static().unwrap(), &a.public().0[..]);
        assert_eq!(ini.get_remote_static().unwrap(), &b.public().0[..]);
    }

    #[test]
    fn generate_gives_distinct_keys() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.public(), b.public());
        assert_ne!(a.secret(), b.secret());
        assert_eq!(Identity::from_secret(*a.secret()).public(), a.public());
    }

    #[test]
    fn debug_never_shows_secret() {
        let id = Identity::from_secret([7u8; 32]);
        let dbg = format!("{id:?}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
        assert!(!dbg.contains(&BASE64.encode(&[7u8; 32])), "{dbg}");
        assert!(!dbg.contains("7, 7"), "{dbg}");
        assert!(dbg.contains(&id.fingerprint().to_string()), "{dbg}");
        let pk = format!("{:?}", id.public());
        assert_eq!(pk, format!("PublicKey({})", id.fingerprint()));
    }

    #[test]
    fn fingerprint_format_and_round_trip() {
        let id = Identity::from_secret([1u8; 32]);
        let fp = id.fingerprint();
        let s = fp.to_string();
        assert_eq!(s.len(), 19);
        let groups: Vec<&str> = s.split('-').collect();
        assert_eq!(groups.len(), 4);
        for g in &groups {
            assert_eq!(g.len(), 4);
            assert!(g
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        }
        assert_eq!(s.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(s.to_lowercase().parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(s.replace('-', "").parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("  {s} \n").parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("{fp:?}"), format!("Fingerprint({s})"));
        // Definition: first 10 bytes of BLAKE2s-256("wavry fingerprint v1" || key).
        let digest = Blake2s256::digest([FINGERPRINT_CONTEXT, &id.public().0[..]].concat());
        assert_eq!(fp.as_bytes()[..], digest[..10]);
        // Different keys, different fingerprints.
        assert_ne!(Identity::from_secret([2u8; 32]).fingerprint(), fp);
        // Rejects garbage.
        for bad in [
            "",
            "ABCD-EFGH",
            "ABCD-EFGH-IJKL-MNOP-QRST",
            "ABCD-EFGH-IJKL-MNO1",
            "ÄBCD-EFGH-IJKL-MNO",
        ] {
            assert!(
                matches!(bad.parse::<Fingerprint>(), Err(IdentityError::BadKey(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn public_key_encodings() {
        let pk = Identity::from_secret([3u8; 32]).public();
        let b64 = pk.to_base64();
        assert_eq!(b64.len(), 44);
        assert_eq!(PublicKey::from_base64(&b64).unwrap(), pk);
        assert_eq!(PublicKey::from_slice(&pk.0).unwrap(), pk);
        assert!(matches!(
            PublicKey::from_slice(&[0u8; 31]),
            Err(IdentityError::BadKey(_))
        ));
        assert!(matches!(
            PublicKey::from_base64("not base64!"),
            Err(IdentityError::BadKey(_))
        ));
        assert!(matches!(
            PublicKey::from_base64(&BASE64.encode(&[0u8; 33])),
            Err(IdentityError::BadKey(_))
        ));
    }

    #[test]
    fn create_then_load_same_key() {
        let dir = TempDir::new("create");
        let path = dir.join("sub/dir/identity.key");
        let (id, created) = Identity::load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = Identity::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.public(), id.public());
        assert_eq!(again.secret(), id.secret());
        assert_eq!(Identity::load(&path).unwrap().public(), id.public());
        // File format.
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("wavry-identity-v1\n{}\n", BASE64.encode(id.secret()))
        );
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("identity.key")]);
    }

    #[cfg(unix)]
    #[test]
    fn created_file_is_0600_and_dirs_0700() {
        let dir = TempDir::new("mode");
        let path = dir.join("cfg/identity.key");
        Identity::load_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        // save (replace) also yields 0600.
        Identity::generate().unwrap().save(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn insecure_permissions_refused() {
        let dir = TempDir::new("insecure");
        let path = dir.join("identity.key");
        let (id, _) = Identity::load_or_create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            match Identity::load(&path) {
                Err(IdentityError::InsecurePermissions { path: p, mode: m }) => {
                    assert_eq!(p, path);
                    assert_eq!(m, mode);
                }
                other => panic!("mode {mode:o}: {other:?}"),
            }
            // load_or_create must not silently replace it either.
            assert!(matches!(
                Identity::load_or_create(&path),
                Err(IdentityError::InsecurePermissions { .. })
            ));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(Identity::load(&path).unwrap().public(), id.public());
        let msg = {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            Identity::load(&path).unwrap_err().to_string()
        };
        assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn malformed_files_rejected() {
        let dir = TempDir::new("malformed");
        let good = BASE64.encode(&[9u8; 32]);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", b"".to_vec(), "empty"),
            (
                "bad header",
                format!("ssh-rsa\n{good}\n").into_bytes(),
                "first line",
            ),
            (
                "future version",
                format!("wavry-identity-v2\n{good}\n").into_bytes(),
                "unsupported",
            ),
            ("no key", b"wavry-identity-v1\n".to_vec(), "missing"),
            (
                "bad base64",
                b"wavry-identity-v1\n!!!notbase64!!!\n".to_vec(),
                "base64",
            ),
            (
                "unpadded",
                format!("wavry-identity-v1\n{}\n", good.trim_end_matches('=')).into_bytes(),
                "base64",
            ),
            (
                "short",
                format!("wavry-identity-v1\n{}\n", BASE64.encode(&[1u8; 31])).into_bytes(),
                "31 bytes",
            ),
            (
                "long",
                format!("wavry-identity-v1\n{}\n", BASE64.encode(&[1u8; 33])).into_bytes(),
                "33 bytes",
            ),
            (
                "trailing junk",
                format!("wavry-identity-v1\n{good}\nmore\n").into_bytes(),
                "unexpected",
            ),
            ("binary", vec![0xff, 0xfe, 0x00, 0x80], "UTF-8"),
            ("huge", vec![b'a'; 10_000], "larger"),
        ];
        for (i, (what, contents, needle)) in cases.into_iter().enumerate() {
            let path = dir.join(&format!("id{i}.key"));
            write_with_mode(&path, &contents, 0o600);
            match Identity::load(&path) {
                Err(IdentityError::Malformed { path: p, reason }) => {
                    assert_eq!(p, path, "{what}");
                    assert!(reason.contains(needle), "{what}: {reason}");
                }
                other => panic!("{what}: {other:?}"),
            }
            let msg = Identity::load_or_create(&path).unwrap_err().to_string();
            assert!(msg.contains(path.to_str().unwrap()), "{what}: {msg}");
            // Not replaced.
            assert_eq!(fs::read(&path).unwrap(), contents, "{what}");
        }
        // A directory where the file should be.
        let d = dir.join("adir");
        fs::create_dir(&d).unwrap();
        assert!(Identity::load(&d).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn tolerant_parsing() {
        let dir = TempDir::new("tolerant");
        let id = Identity::from_secret([5u8; 32]);
        let b64 = BASE64.encode(id.secret());
        for (i, text) in [
            format!("wavry-identity-v1\r\n{b64}\r\n"),
            format!("wavry-identity-v1\n{b64}"),
            format!("wavry-identity-v1\n{b64}\n\n"),
            format!("wavry-identity-v1 \n {b64} \n"),
        ]
        .iter()
        .enumerate()
        {
            let path = dir.join(&format!("id{i}.key"));
            write_with_mode(&path, text.as_bytes(), 0o600);
            assert_eq!(
                Identity::load(&path).unwrap().public(),
                id.public(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = TempDir::new("missing");
        let err = Identity::load(&dir.join("nope.key")).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }

    #[test]
    fn save_new_never_clobbers() {
        let dir = TempDir::new("noclobber");
        let path = dir.join("identity.key");
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        a.save_new(&path).unwrap();
        match b.save_new(&path) {
            Err(IdentityError::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::AlreadyExists)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Identity::load(&path).unwrap().public(), a.public());
        b.save(&path).unwrap();
        assert_eq!(Identity::load(&path).unwrap().public(), b.public());
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1, "temp files left");
    }

    #[test]
    fn concurrent_first_run_agrees() {
        let dir = TempDir::new("race");
        let path = dir.join("identity.key");
        let keys: Vec<PublicKey> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Identity::load_or_create(&path).unwrap().0.public()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(Identity::load(&path).unwrap().public(), keys[0]);
    }

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

    #[test]
    fn known_hosts_tofu() {
        let dir = TempDir::new("known");
        let path = dir.join("cfg/known_hosts");
        let k1 = Identity::from_secret([1u8; 32]).public();
        let k2 = Identity::from_secret([2u8; 32]).public();
        let k3 = Identity::from_secret([3u8; 32]).public();

        let mut kh = KnownHosts::load(&path).unwrap();
        assert!(kh.entries().is_empty());
        assert_eq!(kh.check("192.0.2.7:4444", &k1), Trust::New);
        kh.remember("192.0.2.7:4444", k1).unwrap();
        kh.remember("host.example", k3).unwrap();
        assert_eq!(kh.check("192.0.2.7:4444", &k1), Trust::Known);
        assert_eq!(
            kh.check("192.0.2.7:4444", &k2),
            Trust::Changed { previous: k1 }
        );
        assert_eq!(kh.get("192.0.2.7:4444"), Some(k1));
        assert_eq!(kh.get("192.0.2.7:4445"), None);

        // Persistence.
        let kh2 = KnownHosts::load(&path).unwrap();
        assert_eq!(kh2.get("192.0.2.7:4444"), Some(k1));
        assert_eq!(kh2.get("host.example"), Some(k3));
        assert_eq!(kh2.check("host.example", &k3), Trust::Known);
        #[cfg(unix)]
        assert_eq!(mode_of(&path), 0o600);

        // Replacing keeps one entry per name and order.
        kh.remember("192.0.2.7:4444", k2).unwrap();
        let kh3 = KnownHosts::load(&path).unwrap();
        assert_eq!(
            kh3.entries(),
            &[
                ("192.0.2.7:4444".to_string(), k2),
                ("host.example".to_string(), k3)
            ]
        );
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

        // Bad names are refused and leave the store unchanged.
        for bad in ["", "a b", "#x", "tab\there"] {
            assert!(matches!(
                kh.remember(bad, k1),
                Err(IdentityError::BadName(_))
            ));
        }
        assert_eq!(kh.entries().len(), 2);
    }

    #[test]
    fn known_hosts_parsing() {
        let dir = TempDir::new("knownparse");
        let k1 = Identity::from_secret([1u8; 32]).public();
        let k2 = Identity::from_secret([2u8; 32]).public();
        let path = dir.join("known_hosts");
        fs::write(
            &path,
            format!(
                "# comment\r\n\r\n  a {}  \r\nb\t{}\na {}\n",
                k1.to_base64(),
                k1.to_base64(),
                k2.to_base64()
            ),
        )
        .unwrap();
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.get("a"), Some(k2), "last line wins");
        assert_eq!(kh.get("b"), Some(k1));
        assert_eq!(kh.entries().len(), 2);

        for (contents, needle) in [
            ("a\n".to_string(), "line 1"),
            (format!("# c\na {} extra\n", k1.to_base64()), "line 2"),
            ("a notbase64\n".to_string(), "base64"),
            (format!("a {}\n", BASE64.encode(&[0u8; 16])), "16 bytes"),
        ] {
            fs::write(&path, &contents).unwrap();
            match KnownHosts::load(&path) {
                Err(IdentityError::Malformed { path: p, reason }) => {
                    assert_eq!(p, path);
                    assert!(reason.contains(needle), "{contents:?}: {reason}");
                }
                other => panic!("{contents:?}: {other:?}"),
            }
        }
    }
}
