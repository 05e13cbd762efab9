//! Configuration of the `basketry` program: defaults, then environment,
//! then command-line flags (clap reads both, flags winning).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The configuration file read from the working directory (or from
/// `BASKETRY_CONFIG`).
pub const CONFIG_FILE: &str = "basketry.toml";

/// Keys a configuration file may set, each the lower-case name of a
/// `BASKETRY_*` variable.
const FILE_KEYS: [&str; 9] = [
    "bind",
    "data_dir",
    "event_store",
    "read_db",
    "rate_limits",
    "jwt_secret",
    "jwks_url",
    "log_format",
    "rust_log",
];

/// Applies `basketry.toml` beneath the environment: each key it sets
/// becomes the `BASKETRY_*` variable of the same name unless the
/// environment already sets it, so the precedence is defaults → file →
/// environment → flags (clap reads the environment, flags win). Returns the
/// file read, if any. Unknown keys and non-string values are refused so a
/// typo does not silently fall back to a default. Values are never printed.
pub fn apply_config_file() -> anyhow::Result<Option<PathBuf>> {
    let (path, required) = match std::env::var_os("BASKETRY_CONFIG") {
        Some(p) => (PathBuf::from(p), true),
        None => (PathBuf::from(CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut settings = Vec::new();
    for (key, value) in &table {
        anyhow::ensure!(
            FILE_KEYS.contains(&key.as_str()),
            "{}: unknown key {key:?}; known keys: {}",
            path.display(),
            FILE_KEYS.join(", ")
        );
        let toml::Value::String(value) = value else {
            anyhow::bail!("{}: {key} must be a string", path.display());
        };
        let var = if key == "rust_log" {
            "RUST_LOG".to_string()
        } else {
            format!("BASKETRY_{}", key.to_ascii_uppercase())
        };
        settings.push((var, value.clone()));
    }
    for (var, value) in settings {
        if std::env::var_os(&var).is_none() {
            // Called once at start-up, before any thread is spawned.
            std::env::set_var(var, value);
        }
    }
    Ok(Some(path))
}

/// Name of the generated HS256 secret file in the data directory.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// Where the program keeps its state and how it verifies people.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Directory for the embedded SQLite files and the generated JWT secret.
    #[arg(
        long,
        env = "BASKETRY_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Event store URL: `sqlite://…`, `postgres://…` or `kurrentdb://…`
    /// (default: `events.db` under the data directory).
    #[arg(
        long,
        env = "BASKETRY_EVENT_STORE",
        global = true,
        hide_env_values = true
    )]
    pub event_store: Option<String>,
    /// SQL database for the read models, idempotency records and key usage:
    /// `sqlite://…` or `postgres://…` (default: `read.db` under the data
    /// directory).
    #[arg(long, env = "BASKETRY_READ_DB", global = true, hide_env_values = true)]
    pub read_db: Option<String>,
    /// Rate-limit state: `memory` (per process) or a `postgres://…` URL
    /// shared by every instance.
    #[arg(
        long,
        env = "BASKETRY_RATE_LIMITS",
        default_value = "memory",
        global = true,
        hide_env_values = true
    )]
    pub rate_limits: String,
    /// HS256 secret for JWTs (at least 32 bytes). When unset, one is
    /// generated once and kept in the data directory with mode 0600.
    #[arg(
        long,
        env = "BASKETRY_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// JWKS document for RS256/ES256 tokens: an `https://` URL or a file path.
    #[arg(long, env = "BASKETRY_JWKS_URL", global = true)]
    pub jwks_url: Option<String>,
    /// How often the process holding the projector lease runs billing by
    /// itself: a number with `ms`, `s`, `m`, `h` or `d` (`30m`, `1h`), or
    /// `off`.
    #[arg(
        long,
        env = "BASKETRY_BILLING_INTERVAL",
        default_value = "1h",
        global = true
    )]
    pub billing_interval: String,
}

impl Settings {
    fn data_dir(&self) -> anyhow::Result<&Path> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        Ok(&self.data_dir)
    }

    /// The billing interval; `None` when billing does not run by itself.
    pub fn billing_interval(&self) -> anyhow::Result<Option<std::time::Duration>> {
        parse_interval(&self.billing_interval)
            .with_context(|| format!("BASKETRY_BILLING_INTERVAL={:?}", self.billing_interval))
    }

    /// The event store URL, defaulting to the embedded SQLite file.
    pub fn event_store_url(&self) -> anyhow::Result<String> {
        Ok(match &self.event_store {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir()?.join("events.db").display()),
        })
    }

    /// The SQL database URL, defaulting to the embedded SQLite file.
    pub fn read_db_url(&self) -> anyhow::Result<String> {
        Ok(match &self.read_db {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir()?.join("read.db").display()),
        })
    }

    /// The HS256 secret: configured, or generated once into the data
    /// directory (mode 0600) and read back from there afterwards.
    pub fn jwt_secret(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.as_bytes().to_vec());
        }
        let path = self.data_dir()?.join(JWT_SECRET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let secret = hex::encode(bytes);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(secret.as_bytes())
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(secret.into_bytes())
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok(std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .trim()
                    .as_bytes()
                    .to_vec())
            }
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
}

/// `off`, or a positive whole number followed by `ms`, `s`, `m`, `h` or `d`.
pub fn parse_interval(raw: &str) -> anyhow::Result<Option<std::time::Duration>> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .context("expected `off` or a positive number with a unit, e.g. `30m` or `1h`")?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => anyhow::bail!("unknown unit {unit:?}: use ms, s, m, h or d"),
    };
    Ok(Some(std::time::Duration::from_millis(
        n.checked_mul(ms).context("the interval is too long")?,
    )))
}

#[cfg(test)]
mod interval_tests {
    use super::parse_interval;
    use std::time::Duration;

    #[test]
    fn intervals_have_a_unit_or_are_off() {
        assert_eq!(parse_interval("off").unwrap(), None);
        assert_eq!(
            parse_interval("1h").unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_interval("250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_interval("2d").unwrap(),
            Some(Duration::from_secs(172_800))
        );
        for bad in ["", "1", "0s", "h", "1w", "-1h", "1.5h"] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }
}
