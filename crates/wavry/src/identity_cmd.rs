//! `wavry keygen` and `wavry id`: create and show this device's identity (its static X25519 key,
//! see `rift_crypto::identity`), stored by `wavry_config::identity`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rift_crypto::identity::Identity;
use wavry_config::{identity, ConfigError};

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Identity file to create (default: <config dir>/identity.key; the config dir is
    /// $WAVRY_CONFIG_DIR if set).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Replace an existing identity. Peers that pinned the old key will see it change.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// Identity file to read (default: <config dir>/identity.key).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Also print the base64 public key (what a peer pins or allows).
    #[arg(long)]
    pub public: bool,
}

fn resolve(path: Option<PathBuf>) -> Result<PathBuf> {
    match path {
        Some(p) => Ok(p),
        None => identity::default_path().context("locating the device identity"),
    }
}

pub fn run_keygen(args: KeygenArgs) -> Result<()> {
    let path = resolve(args.path)?;
    let id = Identity::generate().context("generating a device identity")?;
    if args.force {
        // Best effort: show what is being replaced, even if the old file is unreadable.
        let old = identity::load(&path).ok().map(|old| old.fingerprint());
        identity::save(&id, &path)
            .with_context(|| format!("writing the device identity to {}", path.display()))?;
        match old {
            Some(fp) => println!(
                "replaced identity {} (old fingerprint {fp})",
                path.display()
            ),
            None => println!("created identity {}", path.display()),
        }
    } else {
        match identity::save_new(&id, &path) {
            Ok(()) => println!("created identity {}", path.display()),
            Err(ConfigError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                bail!(
                    "a device identity already exists at {}; not replacing it \
                     (use `wavry keygen --force` to replace it: peers that pinned the old key \
                     will then see a changed key)",
                    path.display()
                );
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("writing the device identity to {}", path.display()))
            }
        }
    }
    println!("fingerprint: {}", id.fingerprint());
    Ok(())
}

pub fn run_id(args: IdArgs) -> Result<()> {
    let path = resolve(args.path)?;
    let id = load(&path)?;
    println!("fingerprint: {}", id.fingerprint());
    if args.public {
        println!("public key:  {}", id.public().to_base64());
    }
    Ok(())
}

fn load(path: &Path) -> Result<Identity> {
    match identity::load(path) {
        Ok(id) => Ok(id),
        Err(e) if e.is_not_found() => bail!(
            "no device identity at {}; run `wavry keygen` to create one",
            path.display()
        ),
        Err(e) => Err(e).context("reading the device identity"),
    }
}
