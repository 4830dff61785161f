//! The device identity file: where it lives, its format, and reading and writing it.
//!
//! Identity file format (text): the line `wavry-identity-v1`, then the 32-byte secret in standard
//! padded base64, then a newline; CRLF is tolerated. The file must not be accessible to group or
//! others (mode 0600 on unix); it is always written to a temporary file in the same directory,
//! synced, then moved into place, so a crash never leaves a half-written key.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use rift_crypto::identity::{Identity, KEY_LEN};
use zeroize::Zeroizing;

use crate::{check_private_mode, config_dir, write_atomic, ConfigError, Publish};

/// First line of an identity file.
const IDENTITY_HEADER: &str = "wavry-identity-v1";
/// File name of the identity inside the configuration directory.
const IDENTITY_FILE: &str = "identity.key";
/// An identity file is ~64 bytes; anything much larger is not one (and is not read whole).
const MAX_IDENTITY_FILE: u64 = 4096;

/// Default location: `<config dir>/identity.key`, where the config dir is `$WAVRY_CONFIG_DIR`
/// if set and non-empty, else the platform's per-user config dir for "wavry"
/// (`$XDG_CONFIG_HOME/wavry` or `~/.config/wavry` on Linux).
pub fn default_path() -> Result<PathBuf, ConfigError> {
    Ok(config_dir()?.join(IDENTITY_FILE))
}

/// Load the identity at `path`, or create a new one there (creating missing parent
/// directories with mode 0700) if there is no file. Returns whether it was created.
///
/// Never replaces an existing file: if another process creates one concurrently, that one is
/// loaded. An existing file that is malformed or accessible by group/others is an error.
pub fn load_or_create(path: &Path) -> Result<(Identity, bool), ConfigError> {
    match load(path) {
        Ok(id) => return Ok((id, false)),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let id = Identity::generate()?;
    match save_new(&id, path) {
        Ok(()) => Ok((id, true)),
        // Lost a race with another process creating it: use theirs.
        Err(ConfigError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            Ok((load(path)?, false))
        }
        Err(e) => Err(e),
    }
}

/// Load the identity at `path`. Refuses files accessible by group/others (unix) and
/// malformed files; a missing file is an [`ConfigError::Io`] with kind `NotFound`
/// (see [`ConfigError::is_not_found`]).
pub fn load(path: &Path) -> Result<Identity, ConfigError> {
    let file = File::open(path).map_err(|e| ConfigError::io(path, e))?;
    let meta = file.metadata().map_err(|e| ConfigError::io(path, e))?;
    if !meta.is_file() {
        return Err(ConfigError::malformed(path, "not a regular file"));
    }
    check_private_mode(path, &meta)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(128));
    file.take(MAX_IDENTITY_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ConfigError::io(path, e))?;
    if buf.len() as u64 > MAX_IDENTITY_FILE {
        return Err(ConfigError::malformed(
            path,
            format!("larger than {MAX_IDENTITY_FILE} bytes; not an identity file"),
        ));
    }
    decode(&buf).map_err(|reason| ConfigError::malformed(path, reason))
}

/// Write `id` to `path`, atomically replacing any existing file (mode 0600; missing
/// parent directories are created with mode 0700).
pub fn save(id: &Identity, path: &Path) -> Result<(), ConfigError> {
    write_atomic(path, encode(id).as_bytes(), Publish::Replace)
}

/// Write `id` to `path` only if no file exists there; otherwise fails with an
/// [`ConfigError::Io`] of kind `AlreadyExists` and leaves the existing file alone.
pub fn save_new(id: &Identity, path: &Path) -> Result<(), ConfigError> {
    write_atomic(path, encode(id).as_bytes(), Publish::NoClobber)
}

/// The identity file contents.
fn encode(id: &Identity) -> Zeroizing<String> {
    let b64 = Zeroizing::new(BASE64.encode(&id.secret()[..]));
    Zeroizing::new(format!("{IDENTITY_HEADER}\n{}\n", b64.as_str()))
}

/// Parse identity file contents; the error is a human-readable reason.
fn decode(contents: &[u8]) -> Result<Identity, String> {
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
    Ok(Identity::from_secret(*secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use rift_crypto::identity::PublicKey;
    use std::ffi::OsString;
    use std::fs;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn create_then_load_same_key() {
        let dir = TempDir::new("create");
        let path = dir.join("sub/dir/identity.key");
        let (id, created) = load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.public(), id.public());
        assert_eq!(again.secret(), id.secret());
        assert_eq!(load(&path).unwrap().public(), id.public());
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
        load_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        // save (replace) also yields 0600.
        save(&Identity::generate().unwrap(), &path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn insecure_permissions_refused() {
        let dir = TempDir::new("insecure");
        let path = dir.join("identity.key");
        let (id, _) = load_or_create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            match load(&path) {
                Err(ConfigError::InsecurePermissions { path: p, mode: m }) => {
                    assert_eq!(p, path);
                    assert_eq!(m, mode);
                }
                other => panic!("mode {mode:o}: {other:?}"),
            }
            // load_or_create must not silently replace it either.
            assert!(matches!(
                load_or_create(&path),
                Err(ConfigError::InsecurePermissions { .. })
            ));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(load(&path).unwrap().public(), id.public());
        let msg = {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            load(&path).unwrap_err().to_string()
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
            match load(&path) {
                Err(ConfigError::Malformed { path: p, reason }) => {
                    assert_eq!(p, path, "{what}");
                    assert!(reason.contains(needle), "{what}: {reason}");
                }
                other => panic!("{what}: {other:?}"),
            }
            let msg = load_or_create(&path).unwrap_err().to_string();
            assert!(msg.contains(path.to_str().unwrap()), "{what}: {msg}");
            // Not replaced.
            assert_eq!(fs::read(&path).unwrap(), contents, "{what}");
        }
        // A directory where the file should be.
        let d = dir.join("adir");
        fs::create_dir(&d).unwrap();
        assert!(load(&d).is_err());
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
            assert_eq!(load(&path).unwrap().public(), id.public(), "{text:?}");
        }
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = TempDir::new("missing");
        let err = load(&dir.join("nope.key")).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }

    #[test]
    fn save_new_never_clobbers() {
        let dir = TempDir::new("noclobber");
        let path = dir.join("identity.key");
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        save_new(&a, &path).unwrap();
        match save_new(&b, &path) {
            Err(ConfigError::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::AlreadyExists)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(load(&path).unwrap().public(), a.public());
        save(&b, &path).unwrap();
        assert_eq!(load(&path).unwrap().public(), b.public());
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1, "temp files left");
    }

    #[test]
    fn concurrent_first_run_agrees() {
        let dir = TempDir::new("race");
        let path = dir.join("identity.key");
        let keys: Vec<PublicKey> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&path).unwrap().0.public()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(load(&path).unwrap().public(), keys[0]);
    }
}
