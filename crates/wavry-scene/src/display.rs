//! A private Xvfb display: started on a free display number (Xvfb picks it and reports it on
//! a pipe once it accepts clients), killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DisplayError {
    #[error("cannot start Xvfb ({0}); install it (scripts/setup.sh installs the xvfb package)")]
    Spawn(std::io::Error),
    #[error("Xvfb exited without reporting a display number")]
    NoNumber,
}

/// An Xvfb server of its own.
pub struct VirtualDisplay {
    child: Child,
    name: String,
}

impl VirtualDisplay {
    /// Start Xvfb with one `width`×`height` 24-bit screen (`-noreset`, no TCP).
    pub fn start(width: u32, height: u32) -> Result<Self, DisplayError> {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-noreset",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
            ])
            .arg(format!("{width}x{height}x24"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(DisplayError::Spawn)?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            // Bounded: Xvfb either prints its number or exits (end of file).
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let number = line.trim();
        if number.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DisplayError::NoNumber);
        }
        let name = format!(":{number}");
        Ok(Self { child, name })
    }

    /// The display name, e.g. `:3`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
