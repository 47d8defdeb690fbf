//! The relay's configuration: where it listens, where it keeps its data, and the limits that
//! keep one network or one connection from taking the machine. Read from a TOML file and
//! command-line flags (flags win).
//!
//! Owns defaults and validation of settings. Knows nothing of sockets or storage.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// Room in a frame for what surrounds the blobs of an answer or request.
const HEADROOM: usize = 64 * 1024;

/// Limits on what devices may send and store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Largest blob accepted, in bytes.
    pub max_blob_bytes: usize,
    /// Most bytes of blobs one network may store.
    pub network_quota_bytes: u64,
    /// Most bytes of blobs in one pull answer.
    pub pull_max_bytes: u32,
    /// Most requests per second one connection may make (excess waits).
    pub requests_per_second: u32,
    /// Most bytes per second one connection may send (excess waits).
    pub bytes_per_second: u64,
    /// Most connections served at once (more are refused).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: nabij_relay_proto::wire::DEFAULT_MAX_FRAME,
            max_blob_bytes: nabij_relay_proto::wire::DEFAULT_MAX_BLOB,
            network_quota_bytes: 4 * 1024 * 1024 * 1024,
            pull_max_bytes: 1024 * 1024,
            requests_per_second: 5_000,
            bytes_per_second: 64 * 1024 * 1024,
            max_connections: 1_000,
        }
    }
}

/// The relay's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Where the database and the relay's key live.
    pub data_dir: PathBuf,
    /// Limits and quotas.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 7447)),
            data_dir: PathBuf::from("nabij-relay-data"),
            limits: Limits::default(),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid TOML or has unknown or mistyped settings.
    #[error("configuration: {0}")]
    Parse(String),
    /// A setting out of range.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML configuration; missing settings take their defaults.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Checks that the limits make sense together.
    pub fn check(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        // Devices accept answers of up to 64 MiB; a pull answer is one blob or up to
        // `pull_max_bytes` of them, plus framing: both must fit a frame with room to spare.
        if !(128 * 1024..=64 * 1024 * 1024).contains(&l.max_frame_bytes) {
            return Err(ConfigError::Invalid("max_frame_bytes must be 128 KiB to 64 MiB".into()));
        }
        if l.max_blob_bytes == 0 || l.max_blob_bytes + HEADROOM > l.max_frame_bytes {
            return Err(ConfigError::Invalid(
                "max_blob_bytes must be at least 64 KiB below max_frame_bytes".into(),
            ));
        }
        if l.pull_max_bytes as usize + HEADROOM > l.max_frame_bytes {
            return Err(ConfigError::Invalid(
                "pull_max_bytes must be at least 64 KiB below max_frame_bytes".into(),
            ));
        }
        if l.requests_per_second == 0 || l.bytes_per_second == 0 || l.max_connections == 0 {
            return Err(ConfigError::Invalid("rates and max_connections must be positive".into()));
        }
        if l.pull_max_bytes == 0 {
            return Err(ConfigError::Invalid("pull_max_bytes must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_typos_are_refused() {
        let c = Config::from_toml(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/relay\"\n[limits]\nnetwork_quota_bytes = 1000\n",
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.limits.network_quota_bytes, 1000);
        assert_eq!(c.limits.max_frame_bytes, Limits::default().max_frame_bytes);
        assert!(matches!(Config::from_toml("listne = \"x\""), Err(ConfigError::Parse(_))));
        for bad in [
            "[limits]\nmax_frame_bytes = 10",
            "[limits]\nmax_blob_bytes = 16777215",
            "[limits]\npull_max_bytes = 16777215",
            "[limits]\nrequests_per_second = 0",
        ] {
            assert!(matches!(Config::from_toml(bad), Err(ConfigError::Invalid(_))), "{bad}");
        }
        Config::default().check().unwrap();
    }
}
