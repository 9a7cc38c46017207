//! Why the server could not start: the one error type of building state,
//! binding sockets and loading TLS material, shared by the fronts that build
//! their own parts.

use crate::config::ConfigError;
use crate::diagnostics::LoadError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("mapping {0}")]
    Mapping(#[from] LoadError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
