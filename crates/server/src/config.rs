//! The server's configuration file, `missive.toml` in the data directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "missive.toml";
/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "missive.db";

/// Server settings. Written by `missive-server init`, edited by the administrator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The domain this server serves (`interieur.gouv.fr`).
    pub domain: String,
    /// Domains whose addresses may register here; by default only `domain`.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Let any address of an allowed domain register without an invite (pilots only).
    #[serde(default)]
    pub open_registration: bool,
    /// How long an invite code stays valid, in hours.
    #[serde(default = "default_invite_ttl_hours")]
    pub invite_ttl_hours: u64,
    /// A PostgreSQL connection string (`host=… user=… dbname=…`) to store everything there
    /// instead of the embedded SQLite database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// Largest blob (encrypted file) accepted, in bytes. The default carries a 2 GiB file
    /// with its padding and per-chunk tags.
    #[serde(default = "default_max_blob_bytes")]
    pub max_blob_bytes: u64,
    /// Bytes of blobs one user may keep stored at once.
    #[serde(default = "default_blob_quota_bytes")]
    pub blob_quota_bytes: u64,
    /// Days a complete blob stays available after its upload.
    #[serde(default = "default_blob_retention_days")]
    pub blob_retention_days: u64,
    /// Hours an unfinished upload is kept without progress before it is discarded.
    #[serde(default = "default_upload_idle_hours")]
    pub upload_idle_hours: u64,
    /// Seconds a client has to send a request's headers before the connection is closed.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Requests per second one client IP may sustain (0: no limit), and its burst.
    #[serde(default = "default_rate_limit_ip_per_second")]
    pub rate_limit_ip_per_second: u32,
    #[serde(default = "default_rate_limit_ip_burst")]
    pub rate_limit_ip_burst: u32,
    /// Requests per second one device may sustain (0: no limit), and its burst.
    #[serde(default = "default_rate_limit_device_per_second")]
    pub rate_limit_device_per_second: u32,
    #[serde(default = "default_rate_limit_device_burst")]
    pub rate_limit_device_burst: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for per-IP limits).
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// A directory holding the built web app (`web/dist`), served at `/` beside the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_dir: Option<PathBuf>,
    /// The longest any message is kept on the clients, in days: every client erases older
    /// messages, whatever a conversation's timer says (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retention_days: Option<u64>,
    /// The sensitivity labels members may put on a conversation, with their rules
    /// (`[[labels]]` tables: `name`, `colour`, `level`, and optionally `max_disappear` in
    /// seconds, `no_forward`, `downloads` = "allowed" | "in_app" | "off", `domains`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<missive_proto::api::Label>,
    /// The UDP address the call media relay listens on (`0.0.0.0:3479` to take calls from
    /// other machines; the default, a free port on loopback, serves this machine only).
    #[serde(default = "default_media_listen")]
    pub media_listen: String,
    /// The address clients send call media to, when `media_listen` binds every address or sits
    /// behind NAT (the port stays `media_listen`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_public_address: Option<std::net::IpAddr>,
    /// TURN servers for call clients whose network blocks UDP to the relay (coturn, say:
    /// `turn:turn.example.org:3478?transport=udp`, `turns:turn.example.org:443?transport=tcp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN servers (coturn's `static-auth-secret`): each device
    /// gets its own credentials from it, which expire after `turn_ttl_hours`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_secret: Option<String>,
    #[serde(default = "default_turn_ttl_hours")]
    pub turn_ttl_hours: u64,
}

fn default_turn_ttl_hours() -> u64 {
    12
}

fn default_media_listen() -> String {
    "127.0.0.1:0".into()
}

fn default_invite_ttl_hours() -> u64 {
    7 * 24
}

fn default_max_blob_bytes() -> u64 {
    (2 << 30) + (512 << 10)
}

fn default_blob_quota_bytes() -> u64 {
    20 << 30
}

fn default_blob_retention_days() -> u64 {
    30
}

fn default_upload_idle_hours() -> u64 {
    24
}

fn default_header_read_timeout_secs() -> u64 {
    10
}

fn default_rate_limit_ip_per_second() -> u32 {
    100
}

fn default_rate_limit_ip_burst() -> u32 {
    500
}

fn default_rate_limit_device_per_second() -> u32 {
    50
}

fn default_rate_limit_device_burst() -> u32 {
    200
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration in {0}: run `missive-server --data DIR init --domain DOMAIN` first")]
    Missing(PathBuf),
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path} already configures domain {existing}, not {requested}")]
    DomainMismatch {
        path: PathBuf,
        existing: String,
        requested: String,
    },
}

impl Config {
    /// A configuration for `domain` with defaults.
    pub fn new(domain: &str) -> Self {
        Config {
            domain: domain.to_owned(),
            allowed_domains: vec![domain.to_owned()],
            open_registration: false,
            invite_ttl_hours: default_invite_ttl_hours(),
            postgres: None,
            max_blob_bytes: default_max_blob_bytes(),
            blob_quota_bytes: default_blob_quota_bytes(),
            blob_retention_days: default_blob_retention_days(),
            upload_idle_hours: default_upload_idle_hours(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            rate_limit_ip_per_second: default_rate_limit_ip_per_second(),
            rate_limit_ip_burst: default_rate_limit_ip_burst(),
            rate_limit_device_per_second: default_rate_limit_device_per_second(),
            rate_limit_device_burst: default_rate_limit_device_burst(),
            trusted_proxies: Vec::new(),
            web_dir: None,
            max_retention_days: None,
            labels: Vec::new(),
            media_listen: default_media_listen(),
            media_public_address: None,
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl_hours: default_turn_ttl_hours(),
        }
    }

    /// Reads `DIR/missive.toml`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing(dir.to_owned()))
            }
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        if config.allowed_domains.is_empty() {
            config.allowed_domains.push(config.domain.clone());
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        for d in std::iter::once(&self.domain).chain(&self.allowed_domains) {
            if !is_domain(d) {
                return Err(format!("{d:?} is not a domain name"));
            }
        }
        for url in &self.turn_urls {
            let scheme = url.split_once(':').map(|(s, _)| s);
            if !matches!(scheme, Some("turn" | "turns" | "stun" | "stuns")) {
                return Err(format!(
                    "turn_urls: {url:?} is not a turn:, turns:, stun: or stuns: URL"
                ));
            }
        }
        let needs_secret = self.turn_urls.iter().any(|u| u.starts_with("turn"));
        if needs_secret && self.turn_secret.as_deref().is_none_or(str::is_empty) {
            return Err(
                "turn_urls name TURN servers: set turn_secret (coturn's static-auth-secret)".into(),
            );
        }
        if self.turn_ttl_hours == 0 {
            return Err("turn_ttl_hours must be at least 1".into());
        }
        if self.max_retention_days == Some(0) {
            return Err("max_retention_days must be at least 1 (or absent: no limit)".into());
        }
        let mut names = std::collections::HashSet::new();
        for label in &self.labels {
            let name = label.name.trim();
            if name.is_empty() || name.len() > 64 || name != label.name {
                return Err(format!(
                    "label {:?}: a name of 1 to 64 characters, without spaces around it",
                    label.name
                ));
            }
            if !names.insert(name.to_lowercase()) {
                return Err(format!("label {name:?} is defined twice"));
            }
            let colour = label.colour.strip_prefix('#').unwrap_or("");
            if colour.len() != 6 || !colour.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "label {name:?}: colour {:?} is not #RRGGBB",
                    label.colour
                ));
            }
            if label.max_disappear == Some(0) {
                return Err(format!(
                    "label {name:?}: max_disappear must be at least 1 second"
                ));
            }
            if label.downloads == missive_proto::api::Downloads::Unknown {
                return Err(format!(
                    "label {name:?}: downloads is \"allowed\", \"in_app\" or \"off\""
                ));
            }
            if let Some(d) = label.domains.iter().find(|d| !is_domain(d)) {
                return Err(format!("label {name:?}: {d:?} is not a domain name"));
            }
        }
        Ok(())
    }

    /// The organisation's rules, as clients receive them (`GET /v1/policy`).
    pub fn policy(&self) -> missive_proto::api::Policy {
        missive_proto::api::Policy {
            max_retention: self.max_retention_days.map(|d| d.saturating_mul(86_400)),
            labels: self.labels.clone(),
        }
    }

    /// Writes the configuration for `domain` unless one exists; idempotent for the same domain.
    pub fn init(dir: &Path, domain: &str) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let domain = domain.to_ascii_lowercase();
        if !is_domain(&domain) {
            return Err(ConfigError::Invalid {
                path,
                message: format!("{domain:?} is not a domain name"),
            });
        }
        match Config::load(dir) {
            Ok(existing) if existing.domain == domain => return Ok(existing),
            Ok(existing) => {
                return Err(ConfigError::DomainMismatch {
                    path,
                    existing: existing.domain,
                    requested: domain,
                })
            }
            Err(ConfigError::Missing(_)) => {}
            Err(e) => return Err(e),
        }
        let config = Config::new(&domain);
        config.save(dir)?;
        Ok(config)
    }

    /// Writes this configuration into `dir` (created if missing), readable by its owner only.
    pub fn save(&self, dir: &Path) -> Result<(), ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let io = |source| ConfigError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = format!(
            "# Missive server configuration.\n{}",
            toml::to_string(self).map_err(|e| ConfigError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?
        );
        std::fs::write(&path, text).map_err(io)?;
        restrict_permissions(dir).map_err(io)
    }

    /// Whether `address` is `local@domain` with `domain` allowed here.
    pub fn allows(&self, address: &str) -> bool {
        match split_address(address) {
            Some((_, domain)) => self.allowed_domains.iter().any(|d| d == domain),
            None => false,
        }
    }
}

/// Makes the data directory its owner's alone: the directory 0700, and the files at its top
/// 0600 (the configuration may hold a database password, the database every token's hash).
pub fn restrict_permissions(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

/// Splits a well-formed lowercase address into local part and domain.
pub fn split_address(address: &str) -> Option<(&str, &str)> {
    let (local, domain) = address.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-+".contains(&b));
    (local_ok && is_domain(domain)).then_some((local, domain))
}

fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let c = Config::new("example.org");
        for (addr, ok) in [
            ("alice@example.org", true),
            ("a.b-c+d@example.org", true),
            ("alice@other.org", false),
            ("Alice@example.org", false),
            ("@example.org", false),
            ("alice@", false),
            ("alice", false),
            ("alice@example.org@example.org", false),
        ] {
            assert_eq!(c.allows(addr), ok, "{addr}");
        }
    }

    #[test]
    fn labels_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let write = |extra: &str| {
            std::fs::write(
                dir.path().join(CONFIG_FILE),
                format!("domain = \"example.org\"\nmax_retention_days = 365\n{extra}"),
            )
            .expect("write")
        };
        write(
            "[[labels]]\nname = \"Diffusion restreinte\"\ncolour = \"#B3261E\"\nlevel = 2\n\
             max_disappear = 604800\nno_forward = true\ndownloads = \"in_app\"\n\
             domains = [\"example.org\"]\n",
        );
        let c = Config::load(dir.path()).expect("loads");
        let policy = c.policy();
        assert_eq!(policy.max_retention, Some(365 * 86_400));
        assert_eq!(policy.labels[0].name, "Diffusion restreinte");
        assert_eq!(
            policy.labels[0].downloads,
            missive_proto::api::Downloads::InApp
        );
        for (bad, why) in [
            ("[[labels]]\nname = \"X\"\ncolour = \"red\"\nlevel = 1\n", "#RRGGBB"),
            (
                "[[labels]]\nname = \"X\"\ncolour = \"#000000\"\nlevel = 1\ndownloads = \"maybe\"\n",
                "downloads",
            ),
            (
                "[[labels]]\nname = \"X\"\ncolour = \"#000000\"\nlevel = 1\n\
                 [[labels]]\nname = \"x\"\ncolour = \"#000000\"\nlevel = 2\n",
                "defined twice",
            ),
        ] {
            write(bad);
            let e = Config::load(dir.path()).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
