//! Configuration of the `basketry` program: defaults, then environment,
//! then command-line flags (clap reads both, flags winning).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use basketry_command_api::auth::{JwksSource, JwtConfig};

/// The configuration file read from the working directory (or from
/// `BASKETRY_CONFIG`).
pub const CONFIG_FILE: &str = "basketry.toml";

/// Keys a configuration file may set, each the lower-case name of a
/// `BASKETRY_*` variable.
const FILE_KEYS: [&str; 16] = [
    "bind",
    "data_dir",
    "event_store",
    "read_db",
    "rate_limits",
    "jwt_secret",
    "jwks_url",
    "jwks_refresh",
    "jwt_issuer",
    "jwt_audience",
    "jwt_hs256",
    "idempotency_in_flight_timeout",
    "log_format",
    "rust_log",
    "user_rate_limit_per_minute",
    "billing_interval",
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

/// Default of `BASKETRY_IDEMPOTENCY_IN_FLIGHT_TIMEOUT`, in seconds.
pub const DEFAULT_IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECS: u32 = 60;

/// Name of the generated HS256 secret file in the data directory.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// On or off (`BASKETRY_JWT_HS256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Toggle {
    /// On.
    Enabled,
    /// Off.
    Disabled,
}

/// A duration written `500ms`, `30s`, `10m`, `1h` or `1d`; more than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("{text:?} is not a duration like 500ms, 30s, 10m, 1h or 1d");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    if millis == 0 {
        return Err("the duration must be more than zero".into());
    }
    Ok(Duration::from_millis(millis))
}

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
    /// JWKS document for RS256/ES256 tokens: an `https://` URL or a file
    /// path. Requires `BASKETRY_JWT_ISSUER` and `BASKETRY_JWT_AUDIENCE`,
    /// and turns HS256 off unless `BASKETRY_JWT_HS256=enabled`.
    #[arg(long, env = "BASKETRY_JWKS_URL", global = true)]
    pub jwks_url: Option<String>,
    /// How often the JWKS is read again, so a key withdrawn by the identity
    /// provider stops verifying (`30s`, `10m`, `1h`).
    #[arg(
        long,
        env = "BASKETRY_JWKS_REFRESH",
        default_value = "10m",
        value_parser = parse_duration,
        global = true
    )]
    pub jwks_refresh: Duration,
    /// The issuer every token's `iss` must equal (required with a JWKS).
    #[arg(long, env = "BASKETRY_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Accepted audiences, comma-separated: every token's `aud` (a string or
    /// an array) must name one (required with a JWKS).
    #[arg(long, env = "BASKETRY_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// HS256 tokens (`basketry token`): `enabled` or `disabled`. Default:
    /// enabled without a JWKS, disabled with one.
    #[arg(
        long = "jwt-hs256",
        env = "BASKETRY_JWT_HS256",
        value_enum,
        global = true
    )]
    pub jwt_hs256: Option<Toggle>,
    /// Requests a minute each person (JWT) may make, both APIs together;
    /// more is 429 with `Retry-After`.
    #[arg(
        long,
        env = "BASKETRY_USER_RATE_LIMIT_PER_MINUTE",
        default_value_t = basketry_command_api::limits::DEFAULT_USER_RATE_LIMIT_PER_MINUTE,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub user_rate_limit_per_minute: u32,
    /// Seconds a request with an `Idempotency-Key` may stay in flight before
    /// a retry with the key may take it over (its instance is presumed
    /// dead). Longer than any command runs; see
    /// `docs/adr/0012-idempotency-fenced-by-the-log.md`.
    #[arg(
        long,
        env = "BASKETRY_IDEMPOTENCY_IN_FLIGHT_TIMEOUT",
        default_value_t = DEFAULT_IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECS,
        value_parser = clap::value_parser!(u32).range(1..=86_400),
        global = true
    )]
    pub idempotency_in_flight_timeout: u32,
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
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        // Only its owner needs the data directory (SQLite files, secret).
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        Ok(&self.data_dir)
    }

    /// Whether HS256 tokens are accepted: as configured, else only when no
    /// JWKS is (an identity provider then issues every token).
    pub fn hs256_enabled(&self) -> bool {
        match self.jwt_hs256 {
            Some(Toggle::Enabled) => true,
            Some(Toggle::Disabled) => false,
            None => self.jwks_url.is_none(),
        }
    }

    /// The configured issuer, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.jwt_issuer
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The accepted audiences (`BASKETRY_JWT_AUDIENCE`, comma-separated).
    pub fn audiences(&self) -> Vec<String> {
        self.jwt_audience
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// How tokens are verified. With a JWKS, the issuer and at least one
    /// audience are required (else any token of the identity provider,
    /// for any of its applications, would be accepted), and HS256 is off
    /// unless explicitly enabled. The HS256 secret is read (or generated)
    /// only when HS256 is on.
    pub fn jwt_config(&self) -> anyhow::Result<JwtConfig> {
        let jwks = self.jwks_url.as_ref().map(|u| {
            if u.starts_with("http://") || u.starts_with("https://") {
                JwksSource::Url(u.clone())
            } else {
                JwksSource::File(u.into())
            }
        });
        let issuer = self.issuer().map(str::to_string);
        let audiences = self.audiences();
        if jwks.is_some() {
            anyhow::ensure!(
                issuer.is_some(),
                "BASKETRY_JWKS_URL is set but BASKETRY_JWT_ISSUER is not: set it to the \
                 identity provider's issuer (the `iss` of its tokens)"
            );
            anyhow::ensure!(
                !audiences.is_empty(),
                "BASKETRY_JWKS_URL is set but BASKETRY_JWT_AUDIENCE is not: set it to the \
                 audience (client id) of Basketry at the identity provider, or several, \
                 comma-separated"
            );
        }
        let hs256 = self.hs256_enabled();
        anyhow::ensure!(
            hs256 || jwks.is_some(),
            "BASKETRY_JWT_HS256=disabled without BASKETRY_JWKS_URL: no token could verify"
        );
        Ok(JwtConfig {
            hs256_secret: if hs256 {
                Some(self.jwt_secret()?)
            } else {
                None
            },
            jwks,
            issuer,
            audiences,
            jwks_refresh_interval: Some(self.jwks_refresh),
            ..JwtConfig::default()
        })
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
            Ok(text) => {
                refuse_shared_secret_file(&path)?;
                return Ok(text.trim().as_bytes().to_vec());
            }
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
                refuse_shared_secret_file(&path)?;
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

/// Refuses a secret file that its group or others may read or write: the
/// secret signs admin tokens, so anyone else on the machine who can read it
/// can become an admin.
fn refuse_shared_secret_file(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading the mode of {}", path.display()))?
            .permissions()
            .mode()
            & 0o777;
        anyhow::ensure!(
            mode & 0o077 == 0,
            "{} is open to its group or to others (mode {mode:o}); the secret signs admin \
             tokens: run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_with_their_unit_and_must_be_positive() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in [
            "",
            "10",
            "m",
            "0s",
            "-1m",
            "1w",
            "1.5h",
            "99999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}

/// `off`, or a positive whole number followed by `ms`, `s`, `m`, `h` or `d`.
pub fn parse_interval(raw: &str) -> anyhow::Result<Option<std::time::Duration>> {
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    parse_duration(raw).map(Some).map_err(anyhow::Error::msg)
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
