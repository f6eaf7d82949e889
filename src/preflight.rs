//! Checks made at start, before anything serves: folders the proxy writes to must be writable
//! (else exit 2, naming the path and the fix), and settings that leave the proxy open get one
//! loud line.

use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::config::{Config, ConfigError};

/// The uid the container image runs as, for the `chown` an unwritable mount needs.
const CONTAINER_UID: u32 = 10001;

/// Creates `dir` if needed and proves a file can be written in it.
pub fn writable_dir(var: &'static str, dir: &Path) -> Result<(), ConfigError> {
    let probe = dir.join(format!(".glm-proxy-write-check-{}", std::process::id()));
    // A folder the proxy makes is its user's alone: it holds logs or key hashes.
    let made = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let written = made.and_then(|()| std::fs::write(&probe, b"")).and_then(|()| std::fs::remove_file(&probe));
    written.map_err(|error| ConfigError {
        var,
        problem: format!(
            "names {} where the proxy cannot write ({error}); make it writable for the user the proxy runs as \
             (in the container, uid {CONTAINER_UID}: `chown -R {CONTAINER_UID}:{CONTAINER_UID}` the host folder, \
             or use docker-compose.yml's named volumes)",
            dir.display()
        ),
    })
}

/// The folders this configuration writes to.
pub fn check_folders(config: &Config) -> Result<(), ConfigError> {
    if config.log_requests {
        writable_dir("LOG_DIR", &config.log_dir)?;
    }
    if let Some(folder) = config.key_db.sqlite_folder().filter(|_| config.enable_incoming_auth) {
        writable_dir("INCOMING_KEY_DB", &folder)?;
    }
    Ok(())
}

/// Whether `host` only accepts connections from this machine.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One WARN line when anyone who reaches the port can spend the Cerebras keys.
pub fn warn_if_open(config: &Config) {
    if !config.enable_incoming_auth && !is_loopback(&config.host) {
        log::warn!(
            "event=open_proxy host={} port={} problem=\"client authentication is off: anyone who can reach this port \
             can spend the Cerebras keys\" fix=\"set ENABLE_INCOMING_AUTH=true and create keys with `glm-proxy keys add NAME`, \
             or HOST=127.0.0.1\"",
            config.host,
            config.port
        );
    }
}

/// One WARN line when client authentication is on but no client key exists: every request
/// would get a 401.
pub fn warn_if_no_client_keys(active_keys: usize) {
    if active_keys == 0 {
        log::warn!(
            "event=no_client_keys problem=\"client authentication is on and no active key exists: every request gets 401\" \
             fix=\"create one with `glm-proxy keys add NAME`\""
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart_from_open_ones() {
        for host in ["127.0.0.1", "::1", "localhost", "127.0.0.2"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.168.1.4", "proxy.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn an_unwritable_folder_names_the_path_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        // A folder cannot be made under a file, whoever runs the test (root included).
        let error = writable_dir("LOG_DIR", &file.join("logs")).unwrap_err().to_string();
        assert!(error.starts_with("LOG_DIR names ") && error.contains("a-file/logs"), "{error}");
        assert!(error.contains("chown -R 10001:10001"), "{error}");
        assert_eq!(writable_dir("LOG_DIR", &dir.path().join("logs")).map_err(|e| e.to_string()), Ok(()));
    }
}
