//! The trust-on-first-use store of peers' keys (`known_hosts`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rift_crypto::identity::PublicKey;

use crate::{config_dir, write_atomic, ConfigError, Publish};

/// File name of the trust-on-first-use store inside the configuration directory.
const KNOWN_HOSTS_FILE: &str = "known_hosts";
/// Upper bound for a known_hosts file (tens of thousands of entries).
const MAX_KNOWN_HOSTS_FILE: u64 = 4 << 20;

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
    /// Default location: `<config dir>/known_hosts` (see [`crate::identity::default_path`]).
    pub fn default_path() -> Result<PathBuf, ConfigError> {
        Ok(config_dir()?.join(KNOWN_HOSTS_FILE))
    }

    /// Load the store at `path`; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut buf = Vec::new();
        match File::open(path) {
            Ok(f) => {
                f.take(MAX_KNOWN_HOSTS_FILE + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| ConfigError::io(path, e))?;
                if buf.len() as u64 > MAX_KNOWN_HOSTS_FILE {
                    return Err(ConfigError::malformed(
                        path,
                        format!("larger than {MAX_KNOWN_HOSTS_FILE} bytes"),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConfigError::io(path, e)),
        }
        let entries = Self::parse(&buf).map_err(|reason| ConfigError::malformed(path, reason))?;
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
    pub fn remember(&mut self, name: &str, key: PublicKey) -> Result<(), ConfigError> {
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

fn validate_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.starts_with('#') || name.chars().any(char::is_whitespace) {
        return Err(ConfigError::BadName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use data_encoding::BASE64;
    use rift_crypto::identity::Identity;
    use std::fs;

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
            assert!(matches!(kh.remember(bad, k1), Err(ConfigError::BadName(_))));
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
                Err(ConfigError::Malformed { path: p, reason }) => {
                    assert_eq!(p, path);
                    assert!(reason.contains(needle), "{contents:?}: {reason}");
                }
                other => panic!("{contents:?}: {other:?}"),
            }
        }
    }
}
