//! Settings read once at start from the environment and validated, so a bad value stops the
//! process with one clear line instead of failing later on a request.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Which storage engine `DATABASE_URL` selects, with the connection string that engine expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file path (from a plain path or `sqlite://path`).
    Sqlite(String),
    /// A `postgres://` or `postgresql://` URL, passed to libpq as is.
    Postgres(String),
}

impl DatabaseUrl {
    /// Picks the engine from the URL scheme: `postgres://`/`postgresql://` is PostgreSQL,
    /// `sqlite://path`, `sqlite:path` or a plain path is SQLite.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() {
            return Err("names no SQLite file".into());
        }
        if path.contains("://") {
            return Err(format!(
                "has an unsupported scheme in {raw:?} (use postgres://… or sqlite://FILE)"
            ));
        }
        Ok(Self::Sqlite(path.to_string()))
    }

    pub fn engine_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of the service. Names and defaults are documented in the README.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub db_pool_size: u32,
    pub bind_addr: SocketAddr,
    pub public_url: url::Url,
    pub smtp_url: Option<String>,
    pub smtp_from: lettre::message::Mailbox,
    pub outbox_dir: PathBuf,
    pub team_email: Option<lettre::message::Mailbox>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub http_workers: usize,
}

/// A setting that could not be read, with the variable name and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {name} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

fn bad(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let database_url = DatabaseUrl::parse(
            &get("DATABASE_URL").unwrap_or_else(|| "sqlite://closeloop.db".into()),
        )
        .map_err(|e| bad("DATABASE_URL", e))?;

        let default_pool = match database_url {
            DatabaseUrl::Sqlite(_) => 4,
            DatabaseUrl::Postgres(_) => 10,
        };
        let db_pool_size = match get("DB_POOL_SIZE") {
            None => default_pool,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=200).contains(n))
                .ok_or_else(|| {
                    bad(
                        "DB_POOL_SIZE",
                        format!("must be a number from 1 to 200, not {v:?}"),
                    )
                })?,
        };

        let bind_raw = get("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind_addr = bind_raw.trim().parse::<SocketAddr>().map_err(|_| {
            bad(
                "BIND_ADDR",
                format!("must be IP:PORT such as 127.0.0.1:8080, not {bind_raw:?}"),
            )
        })?;

        let public_raw = get("PUBLIC_URL").unwrap_or_else(|| "http://localhost:8080".into());
        let public_url = url::Url::parse(public_raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                bad("PUBLIC_URL", format!("must be an http(s) URL such as https://surveys.example.com, not {public_raw:?}"))
            })?;

        let smtp_url = match get("SMTP_URL") {
            None => None,
            Some(v) => {
                let parsed = url::Url::parse(v.trim())
                    .map_err(|e| bad("SMTP_URL", format!("is not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "smtp" | "smtps") {
                    return Err(bad("SMTP_URL", "must start with smtp:// or smtps://"));
                }
                Some(v.trim().to_string())
            }
        };

        let from_raw = get("SMTP_FROM").unwrap_or_else(|| "Closeloop <surveys@localhost>".into());
        let smtp_from = from_raw.trim().parse().map_err(|_| {
            bad(
                "SMTP_FROM",
                format!("must be an address such as \"Acme <surveys@acme.com>\", not {from_raw:?}"),
            )
        })?;

        let outbox_dir = PathBuf::from(get("OUTBOX_DIR").unwrap_or_else(|| "./outbox".into()));

        let team_email = match get("TEAM_EMAIL") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse()
                    .map_err(|_| bad("TEAM_EMAIL", format!("is not an email address: {v:?}")))?,
            ),
        };

        let log_level = get("RUST_LOG").unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| bad("RUST_LOG", format!("is not a valid filter: {e}")))?;
        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "LOG_FORMAT",
                    format!("must be text or json, not {other:?}"),
                ))
            }
        };

        let max_body_bytes = match get("MAX_BODY_BYTES") {
            None => 1024 * 1024,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1024..=64 * 1024 * 1024).contains(n))
                .ok_or_else(|| {
                    bad(
                        "MAX_BODY_BYTES",
                        format!("must be a number of bytes from 1024 to 67108864, not {v:?}"),
                    )
                })?,
        };

        let http_workers = match get("HTTP_WORKERS") {
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| {
                    bad(
                        "HTTP_WORKERS",
                        format!("must be a number from 1 to 256, not {v:?}"),
                    )
                })?,
        };

        Ok(Settings {
            database_url,
            db_pool_size,
            bind_addr,
            public_url,
            smtp_url,
            smtp_from,
            outbox_dir,
            team_email,
            log_level,
            log_format,
            max_body_bytes,
            http_workers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_nothing_set() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("closeloop.db".into()));
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url.as_str(), "http://localhost:8080/");
        assert!(s.smtp_url.is_none());
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn the_engine_comes_from_the_url_scheme() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h/db")
                .unwrap()
                .engine_name(),
            "postgres"
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@h/db")
                .unwrap()
                .engine_name(),
            "postgres"
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("data/x.db").unwrap(),
            DatabaseUrl::Sqlite("data/x.db".into())
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("BIND_ADDR", "localhost"),
            ("PUBLIC_URL", "ftp://x"),
            ("SMTP_URL", "http://mail"),
            ("SMTP_FROM", "not an address"),
            ("TEAM_EMAIL", "nobody"),
            ("LOG_FORMAT", "yaml"),
            ("DB_POOL_SIZE", "0"),
            ("MAX_BODY_BYTES", "12"),
        ] {
            let err = settings(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name);
            assert!(
                err.to_string()
                    .starts_with(&format!("configuration error: {name} ")),
                "{err}"
            );
        }
    }
}
