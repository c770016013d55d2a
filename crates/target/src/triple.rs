//! The Rust target triples kiln builds for, as one type: every build and run
//! decision (which cargo target, which runner, whether a program runs here)
//! starts from a [`Triple`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Rust target triple kiln can build a generated program for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Triple {
    /// `aarch64-unknown-linux-musl`: static binaries for Jetson boards and
    /// Android phones (linked by rust-lld; run here under `qemu-aarch64`).
    Aarch64LinuxMusl,
    /// `wasm32-unknown-unknown`: the simulated device (a cdylib run under
    /// wasmtime with fuel metering).
    Wasm32,
    /// `x86_64-unknown-linux-gnu`: a desktop or server running Linux.
    X86_64LinuxGnu,
}

impl Triple {
    /// Every supported triple, in the order error messages list them.
    pub const ALL: [Triple; 3] = [
        Triple::Aarch64LinuxMusl,
        Triple::Wasm32,
        Triple::X86_64LinuxGnu,
    ];

    /// The triple as rustc spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Triple::Aarch64LinuxMusl => "aarch64-unknown-linux-musl",
            Triple::Wasm32 => "wasm32-unknown-unknown",
            Triple::X86_64LinuxGnu => "x86_64-unknown-linux-gnu",
        }
    }

    /// The triple of the machine kiln runs on, if kiln can build for it.
    pub fn host() -> Option<Triple> {
        if cfg!(all(
            target_arch = "x86_64",
            target_os = "linux",
            target_env = "gnu"
        )) {
            Some(Triple::X86_64LinuxGnu)
        } else if cfg!(all(target_arch = "aarch64", target_os = "linux")) {
            // A static musl program runs on any aarch64 Linux.
            Some(Triple::Aarch64LinuxMusl)
        } else {
            None
        }
    }

    /// Whether this is the machine kiln runs on (a program for it runs natively).
    pub fn is_host(self) -> bool {
        Triple::host() == Some(self)
    }

    /// The simulated device.
    pub fn is_wasm(self) -> bool {
        self == Triple::Wasm32
    }

    /// The user-mode emulator that runs this triple's programs here, and the
    /// Debian package that installs it; `None` for the host and for wasm
    /// (which runs in-process under wasmtime).
    pub fn emulator(self) -> Option<(&'static str, &'static str)> {
        match self {
            Triple::Aarch64LinuxMusl if !self.is_host() => Some(("qemu-aarch64", "qemu-user")),
            _ => None,
        }
    }
}

impl fmt::Display for Triple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A triple kiln cannot build for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not one of aarch64-unknown-linux-musl, wasm32-unknown-unknown, x86_64-unknown-linux-gnu"
)]
pub struct UnsupportedTriple(pub String);

impl FromStr for Triple {
    type Err = UnsupportedTriple;
    /// Parses a supported triple; `host` means [`Triple::host`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "host" {
            return Triple::host().ok_or_else(|| UnsupportedTriple(s.to_string()));
        }
        Triple::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnsupportedTriple(s.to_string()))
    }
}

impl Serialize for Triple {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Triple {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_others() {
        for t in Triple::ALL {
            assert_eq!(t.as_str().parse::<Triple>(), Ok(t));
        }
        let err = "riscv64gc-unknown-linux-gnu".parse::<Triple>().unwrap_err();
        assert!(err.to_string().contains("riscv64gc"), "{err}");
        assert!(Triple::Wasm32.emulator().is_none());
        if Triple::host() == Some(Triple::X86_64LinuxGnu) {
            assert_eq!(
                Triple::Aarch64LinuxMusl.emulator(),
                Some(("qemu-aarch64", "qemu-user"))
            );
            assert_eq!("host".parse::<Triple>(), Ok(Triple::X86_64LinuxGnu));
        }
    }
}
