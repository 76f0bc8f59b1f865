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
    /// A PostgreSQL read replica for reports, dashboards, exports and lists (PostgreSQL only).
    pub database_read_url: Option<String>,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before answering 503.
    pub db_checkout_timeout_ms: u64,
    /// Whether diesel caches prepared statements on PostgreSQL connections
    /// (`DATABASE_PREPARED_STATEMENTS`); off behind PgBouncer in transaction pooling mode.
    pub database_prepared_statements: bool,
    /// SQLite syncs its log on every commit (`SQLITE_SYNCHRONOUS=full`, the default) or at
    /// checkpoints only (`normal`).
    pub sqlite_synchronous_full: bool,
    /// Days after which sent email bodies, delivered webhooks, expired sign-in tokens and
    /// sessions, idempotency records and one-time keys are pruned (`RETENTION_DAYS`; 0 keeps
    /// everything).
    pub retention_days: u32,
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
    /// Invitations claimed per dispatcher batch.
    pub email_batch_size: i64,
    /// Emails sent at once by one dispatcher.
    pub email_concurrency: usize,
    /// Attempts before a transiently failing invitation is marked `failed`.
    pub email_max_attempts: i32,
    /// First retry delay; doubles per attempt (capped at one hour).
    pub email_retry_base_seconds: u64,
    /// How often an idle dispatcher looks for due work.
    pub dispatch_interval_ms: u64,
    pub smtp_pool_size: u32,
    /// Whether this process runs the background dispatcher.
    pub dispatcher: bool,
    /// Public link requests per minute per client, and the burst allowed.
    pub public_link_per_minute: u32,
    pub public_link_burst: u32,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Hours until a new follow-up is due.
    pub followup_sla_hours: u32,
    /// Count the SLA in business hours (Monday to Friday, UTC) instead of clock hours.
    pub followup_sla_business_days: bool,
    /// When a customer raises their score out of the unhappy range, resolve the task.
    pub followup_resolve_on_raise: bool,
    /// Hour (UTC) at which the daily overdue digest goes to TEAM_EMAIL.
    pub digest_hour_utc: u32,
    /// How often (seconds) the dispatcher looks for re-surveys that are due (0: every round).
    pub resurvey_check_seconds: u64,
    /// How often (seconds) the dispatcher looks for tasks that became overdue, to send
    /// `followup.overdue` (0: every round).
    pub followup_overdue_check_seconds: u64,
    /// Whether this process runs the webhook delivery worker.
    pub webhooks: bool,
    /// Attempts before a transiently failing webhook delivery is marked `failed`.
    pub webhook_max_attempts: i32,
    /// First webhook retry delay; doubles per attempt (capped at one hour).
    pub webhook_retry_base_seconds: u64,
    /// Per-request timeout of a webhook delivery (connect and answer).
    pub webhook_timeout_seconds: u64,
    /// How long a claim on a queued email or invitation lasts without a heartbeat; a live
    /// worker extends it every third of it.
    pub email_lease_seconds: u64,
    /// The same for webhook deliveries.
    pub webhook_lease_seconds: u64,
    /// A webhook whose every delivery has failed for this long is disabled and its admins are
    /// emailed (Standard Webhooks: 5 days).
    pub webhook_disable_after_hours: u64,
    /// How long the previous secret keeps signing beside the new one after a rotation.
    pub webhook_rotation_overlap_hours: u64,
    /// Allow webhook and Slack URLs whose host is or resolves to a loopback, private,
    /// link-local or other non-public address (`WEBHOOK_ALLOW_PRIVATE`; off: the SSRF guard
    /// refuses them, see `webhooks::guard`).
    pub webhook_allow_private: bool,
    /// Slack-format incoming webhook that gets each new follow-up (`SLACK_WEBHOOK_URL`); a
    /// survey's own `slack_webhook_url` overrides it.
    pub slack_webhook_url: Option<String>,
    /// This process's stable name on its queue claims (`INSTANCE_ID`); unset: the host name
    /// and the bound port (see `Settings::instance_id`).
    pub instance_id: Option<String>,
    /// Grace period before a new follow-up's alert goes out, so it carries the final answer.
    pub alert_delay_seconds: u64,
    /// A background worker that has not looped for this long makes `/readyz` answer 503.
    pub worker_stall_seconds: u64,
    /// The outcomes a person may give when closing a task (`FOLLOWUP_OUTCOMES`), in the
    /// order a form offers them. The system's own `score_raised` is not among them.
    pub followup_outcomes: Vec<String>,
    /// A workspace session ends after this many hours without a request (`SESSION_IDLE_HOURS`).
    pub session_idle_hours: u32,
    /// ... and this many days after sign-in at the latest (`SESSION_MAX_DAYS`).
    pub session_max_days: u32,
}

/// The default of `FOLLOWUP_OUTCOMES`.
pub const DEFAULT_FOLLOWUP_OUTCOMES: &str =
    "resolved_issue,explained,compensated,feature_request,no_action_needed,could_not_reach";

/// Reads `FOLLOWUP_OUTCOMES`: a comma-separated list of identifiers (a lowercase letter, then
/// lowercase letters, digits or `_`, up to 50 characters), without duplicates and without
/// the system's `score_raised`.
fn outcomes(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    const NAME: &str = "FOLLOWUP_OUTCOMES";
    let raw = value.unwrap_or_else(|| DEFAULT_FOLLOWUP_OUTCOMES.into());
    let mut out: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if !is_outcome_name(item) {
            return Err(bad(
                NAME,
                format!(
                    "must be a comma-separated list of identifiers such as resolved_issue,explained (lowercase letters, digits and _, starting with a letter, up to 50 characters), not {item:?} in {raw:?}"
                ),
            ));
        }
        if item == "score_raised" {
            return Err(bad(
                NAME,
                "must not list score_raised: the system sets it when a customer raises the score",
            ));
        }
        if out.iter().any(|o| o == item) {
            return Err(bad(NAME, format!("lists {item:?} twice")));
        }
        out.push(item.to_string());
    }
    Ok(out)
}

/// Whether `s` is an outcome identifier: `^[a-z][a-z0-9_]{0,49}$`.
pub fn is_outcome_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 50
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A setting that could not be read, with the variable name and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {name} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

/// Reads a whole number within `min..=max`, or `default` when unset.
fn number<T>(
    value: Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match value {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<T>()
            .ok()
            .filter(|n| *n >= min && *n <= max)
            .ok_or_else(|| {
                bad(
                    name,
                    format!("must be a number from {min} to {max}, not {v:?}"),
                )
            }),
    }
}

/// Reads `true`/`false` (also `on`/`off`, `1`/`0`), or `default` when unset.
fn flag(value: Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "on" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "off" | "0" | "no") => Ok(false),
        Some(v) => Err(bad(name, format!("must be true or false, not {v:?}"))),
    }
}

fn bad(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

/// One environment variable: its name, its default as a person reads it, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    pub name: &'static str,
    pub default: &'static str,
    pub about: &'static str,
}

/// Every environment variable Closeloop reads: name, default, what it does. `closeloop --help`
/// and `closeloop config` print it; a test checks that `from_lookup` reads exactly these and
/// that the README's configuration table lists them.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "DATABASE_URL",
        default: "sqlite://closeloop.db",
        about: "sqlite://FILE (or a plain path), or postgres://user:pass@host:port/db",
    },
    EnvVar {
        name: "DATABASE_READ_URL",
        default: "unset",
        about: "PostgreSQL only: a streaming replica (postgres://…) that serves reports, the /app dashboards, CSV exports and list endpoints; reads that must see a write just made use DATABASE_URL; when the replica is down the primary serves them (a warning, closeloop_db_read_fallback_total)",
    },
    EnvVar {
        name: "DB_POOL_SIZE",
        default: "4 (SQLite), 10 (PostgreSQL)",
        about: "connections in the pool (1–200); SQLite writes always use one connection",
    },
    EnvVar {
        name: "DB_CHECKOUT_TIMEOUT_MS",
        default: "1500",
        about: "how long a request waits for a database connection before it answers 503 with Retry-After (100–60000); background workers wait up to 30 s",
    },
    EnvVar {
        name: "DATABASE_PREPARED_STATEMENTS",
        default: "on",
        about: "off turns off diesel's prepared-statement cache on PostgreSQL, as PgBouncer's transaction pooling mode needs (every query is sent unnamed)",
    },
    EnvVar {
        name: "SQLITE_SYNCHRONOUS",
        default: "full",
        about: "full syncs SQLite's write-ahead log on every commit, so an acknowledged answer survives a power cut (group commit makes one sync serve a batch); normal syncs at checkpoints only: a commit survives a crash of the process, not of the machine",
    },
    EnvVar {
        name: "RETENTION_DAYS",
        default: "90",
        about: "days after which sent emails' bodies, delivered webhook deliveries and their attempts, expired sign-in links and sessions, idempotency records and one-time confirmation keys are pruned by the daily housekeeping job (0–36500; 0 keeps everything); answers, follow-ups and their activity are never pruned",
    },
    EnvVar {
        name: "BIND_ADDR",
        default: "127.0.0.1:8080",
        about: "where the HTTP server listens (loopback by default)",
    },
    EnvVar {
        name: "HTTP_WORKERS",
        default: "number of CPUs",
        about: "HTTP worker threads (1–256)",
    },
    EnvVar {
        name: "PUBLIC_URL",
        default: "http://localhost:8080",
        about: "base of every link put in an email or returned by the API",
    },
    EnvVar {
        name: "SMTP_URL",
        default: "unset",
        about: "lettre SMTP URL: smtp://host:25 (plain), smtp://user:pass@host:587?tls=required (STARTTLS), smtps://user:pass@host (implicit TLS); unset → emails written to OUTBOX_DIR",
    },
    EnvVar {
        name: "SMTP_FROM",
        default: "Closeloop <surveys@localhost>",
        about: "envelope and header sender; survey emails show the survey's brand as the name",
    },
    EnvVar {
        name: "SMTP_POOL_SIZE",
        default: "16",
        about: "pooled SMTP connections (1–100)",
    },
    EnvVar {
        name: "OUTBOX_DIR",
        default: "./outbox",
        about: "where .eml files go when there is no SMTP",
    },
    EnvVar {
        name: "TEAM_EMAIL",
        default: "unset",
        about: "where new follow-up alerts and the daily overdue digest go",
    },
    EnvVar {
        name: "DISPATCHER",
        default: "on",
        about: "off stops this process from sending emails (another replica sends them)",
    },
    EnvVar {
        name: "DISPATCH_INTERVAL_MS",
        default: "1000",
        about: "how often an idle worker looks for due work (new work wakes it at once)",
    },
    EnvVar {
        name: "EMAIL_BATCH_SIZE",
        default: "500",
        about: "invitations claimed per batch (1–5000)",
    },
    EnvVar {
        name: "EMAIL_CONCURRENCY",
        default: "32",
        about: "emails sent at once per process (1–1000)",
    },
    EnvVar {
        name: "EMAIL_MAX_ATTEMPTS",
        default: "8",
        about: "attempts before a transiently failing email is failed (1–100)",
    },
    EnvVar {
        name: "EMAIL_RETRY_BASE_SECONDS",
        default: "30",
        about: "first retry delay; doubles per attempt, capped at 1 h, ±20 % jitter (0–86400)",
    },
    EnvVar {
        name: "EMAIL_LEASE_SECONDS",
        default: "300",
        about: "how long a claim on a queued invitation or email lasts without a heartbeat; a live worker extends it every third of it (3–86400)",
    },
    EnvVar {
        name: "INSTANCE_ID",
        default: "host name : bound port",
        about: "this process's name on its queue claims; a restart with the same name takes its old claims back at once (see [The send queue](#distribution-invitations-and-email))",
    },
    EnvVar {
        name: "WORKER_STALL_SECONDS",
        default: "120",
        about: "a background worker that has not looped (or handled a message) for this long makes /readyz answer 503 (at least 3 idle polls)",
    },
    EnvVar {
        name: "ALERT_DELAY_SECONDS",
        default: "120",
        about: "grace period before a new (or reopened) follow-up's alert, so it carries the final score and comment (0–86400)",
    },
    EnvVar {
        name: "FOLLOWUP_SLA_HOURS",
        default: "48",
        about: "a new follow-up is due this many hours after the answer (1–8760)",
    },
    EnvVar {
        name: "FOLLOWUP_SLA_BUSINESS_DAYS",
        default: "false",
        about: "true: count the SLA in business hours, Monday–Friday UTC (48 h = 2 business days)",
    },
    EnvVar {
        name: "FOLLOWUP_RESOLVE_ON_RAISE",
        default: "true",
        about: "resolve a task (outcome score_raised) when the customer raises the score out of the unhappy range",
    },
    EnvVar {
        name: "FOLLOWUP_OUTCOMES",
        default: "resolved_issue,explained,compensated,feature_request,no_action_needed,could_not_reach",
        about: "the outcomes a person may give when closing a task: comma-separated identifiers (a lowercase letter, then lowercase letters, digits or _; up to 50 characters; no duplicates; not score_raised, which only the system sets)",
    },
    EnvVar {
        name: "DIGEST_HOUR_UTC",
        default: "8",
        about: "hour from which the daily overdue digest is sent (0–23)",
    },
    EnvVar {
        name: "RESURVEY_CHECK_SECONDS",
        default: "60",
        about: "how often the dispatcher looks for re-surveys that are due (resurvey_after_days; 0 = every round)",
    },
    EnvVar {
        name: "FOLLOWUP_OVERDUE_CHECK_SECONDS",
        default: "60",
        about: "how often the dispatcher looks for follow-ups that passed their due time, to send the followup.overdue webhook once per task (0 = every round)",
    },
    EnvVar {
        name: "PUBLIC_LINK_PER_MINUTE",
        default: "30",
        about: "public link answers (POSTs) per minute per client address; page views are not counted",
    },
    EnvVar {
        name: "PUBLIC_LINK_BURST",
        default: "20",
        about: "burst allowed above that rate; past it → 429 page in the survey's brand with Retry-After",
    },
    EnvVar {
        name: "TRUSTED_PROXIES",
        default: "empty",
        about: "comma-separated addresses or CIDRs (e.g. 10.0.0.0/8, ::1) of reverse proxies; when the TCP peer is one of them, the client address is the nearest untrusted hop of Forwarded (for=) or else X-Forwarded-For",
    },
    EnvVar {
        name: "WEBHOOKS",
        default: "on",
        about: "off stops this process from delivering webhooks (events are still queued; another replica delivers them)",
    },
    EnvVar {
        name: "WEBHOOK_TIMEOUT_SECONDS",
        default: "10",
        about: "per-request timeout of a webhook delivery, connect and answer (1–300)",
    },
    EnvVar {
        name: "WEBHOOK_MAX_ATTEMPTS",
        default: "10",
        about: "attempts before a transiently failing delivery is marked failed (1–100)",
    },
    EnvVar {
        name: "WEBHOOK_RETRY_BASE_SECONDS",
        default: "10",
        about: "first retry delay; doubles per attempt, capped at 1 h, ±20 % jitter (0–3600; 0 retries at once)",
    },
    EnvVar {
        name: "WEBHOOK_LEASE_SECONDS",
        default: "300",
        about: "like EMAIL_LEASE_SECONDS, for webhook deliveries (3–86400)",
    },
    EnvVar {
        name: "WEBHOOK_DISABLE_AFTER_HOURS",
        default: "120",
        about: "a webhook whose every attempt has failed for this long (5 days, as Standard Webhooks says) is disabled and the admins are emailed (0–8760; 0 disables at the first failed attempt, which the tests use)",
    },
    EnvVar {
        name: "WEBHOOK_ROTATION_OVERLAP_HOURS",
        default: "24",
        about: "how long the previous secret keeps signing beside the new one after a rotation (0–720; 0 drops it at once, which the tests use)",
    },
    EnvVar {
        name: "WEBHOOK_ALLOW_PRIVATE",
        default: "false",
        about: "allow webhook and Slack URLs on loopback, private, link-local (metadata) and other non-public addresses; off, they are refused when saved and at each delivery (the SSRF guard)",
    },
    EnvVar {
        name: "SLACK_WEBHOOK_URL",
        default: "unset",
        about: "Slack (or Slack-format) incoming webhook that gets each new follow-up after ALERT_DELAY_SECONDS; a survey's slack_webhook_url overrides it (https://, or http:// with WEBHOOK_ALLOW_PRIVATE)",
    },
    EnvVar {
        name: "SESSION_IDLE_HOURS",
        default: "12",
        about: "a workspace session ends after this many hours without a request (1–720)",
    },
    EnvVar {
        name: "SESSION_MAX_DAYS",
        default: "30",
        about: "... and this many days after sign-in at the latest (1–365)",
    },
    EnvVar {
        name: "MAX_BODY_BYTES",
        default: "1048576",
        about: "largest accepted JSON body (1 KiB–64 MiB); larger → 413",
    },
    EnvVar {
        name: "RUST_LOG",
        default: "info",
        about: "log filter (warn, closeloop=debug, …)",
    },
    EnvVar {
        name: "LOG_FORMAT",
        default: "text",
        about: "text or json (one JSON object per line)",
    },
];

/// The environment variables as `closeloop --help` lists them: one per line, with the default.
pub fn env_help() -> String {
    let mut out = String::from("Environment variables (all optional):\n");
    for v in ENV_VARS {
        out.push_str(&format!(
            "  {} [default: {}]\n      {}\n",
            v.name, v.default, v.about
        ));
    }
    out
}

/// The effective value of every environment variable, as `closeloop config` prints it:
/// `(name, value, from_default)`, the value being what `lookup` gives (secrets masked) or
/// else the default. Passwords in URLs and every variable whose name says SECRET, PASSWORD,
/// TOKEN or KEY are masked.
/// Defaults that depend on the machine or the engine are shown as `settings` worked them out.
pub fn effective(
    settings: &Settings,
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<(&'static str, String, bool)> {
    ENV_VARS
        .iter()
        .map(|v| match lookup(v.name).filter(|x| !x.trim().is_empty()) {
            Some(value) => (v.name, mask(v.name, value.trim()), false),
            None => {
                let default = match v.name {
                    "DB_POOL_SIZE" => settings.db_pool_size.to_string(),
                    "HTTP_WORKERS" => settings.http_workers.to_string(),
                    _ => v.default.to_string(),
                };
                (v.name, default, true)
            }
        })
        .collect()
}

/// What is wrong with a Slack incoming-webhook URL, in words that complete "the URL …":
/// it must be an absolute `https://` URL with a host (`http://` too when private addresses are
/// allowed, for a receiver on the LAN or in tests), of at most 2000 characters. Where the host
/// points is the SSRF guard's business (`webhooks::guard`), checked when it is used.
pub fn slack_url_problem(value: &str, allow_http: bool) -> Option<String> {
    if value.chars().count() > 2000 {
        return Some("must be at most 2000 characters long".into());
    }
    match url::Url::parse(value.trim()) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => None,
        Ok(u) if u.scheme() == "http" && u.host().is_some() && allow_http => None,
        Ok(u) if u.scheme() == "http" && u.host().is_some() => {
            Some("must be an https:// URL (http:// only with WEBHOOK_ALLOW_PRIVATE=true)".into())
        }
        _ => Some(if allow_http {
            "must be an absolute http:// or https:// URL with a host".into()
        } else {
            "must be an absolute https:// URL with a host, such as https://hooks.slack.com/services/…".into()
        }),
    }
}

/// `value` of variable `name` with its secrets replaced by `********`.
pub fn mask(name: &str, value: &str) -> String {
    const HIDDEN: &str = "********";
    if name.ends_with("WEBHOOK_URL") {
        // An incoming-webhook URL is a bearer credential: its path is the secret.
        return match url::Url::parse(value) {
            Ok(u) if u.host_str().is_some() => {
                format!(
                    "{}://{}/{HIDDEN}",
                    u.scheme(),
                    u.host_str().unwrap_or_default()
                )
            }
            _ => HIDDEN.into(),
        };
    }
    if ["SECRET", "PASSWORD", "TOKEN", "KEY"]
        .iter()
        .any(|w| name.contains(w))
    {
        return HIDDEN.into();
    }
    match url::Url::parse(value) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some(HIDDEN));
            u.to_string()
        }
        Ok(_) => value.to_string(),
        // Not a URL the `url` crate reads, such as libpq's multi-host form
        // `postgres://user:pass@h1:5432,h2:5433/db`: hide what lies between the first `:`
        // after the scheme and the last `@` of the authority.
        Err(_) => match value.split_once("://") {
            Some((scheme, rest)) => {
                let end = rest.find(['/', '?']).unwrap_or(rest.len());
                let (authority, tail) = rest.split_at(end);
                match authority.rsplit_once('@') {
                    Some((userinfo, hosts)) => {
                        let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                        let secret = if userinfo.contains(':') {
                            format!(":{HIDDEN}")
                        } else {
                            String::new()
                        };
                        format!("{scheme}://{user}{secret}@{hosts}{tail}")
                    }
                    None => value.to_string(),
                }
            }
            None => value.to_string(),
        },
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

        let database_read_url = match get("DATABASE_READ_URL") {
            None => None,
            Some(v) => match (DatabaseUrl::parse(&v), &database_url) {
                (Ok(DatabaseUrl::Postgres(read)), DatabaseUrl::Postgres(_)) => Some(read),
                (Ok(DatabaseUrl::Postgres(_)), DatabaseUrl::Sqlite(_)) => {
                    return Err(bad(
                        "DATABASE_READ_URL",
                        "needs a PostgreSQL DATABASE_URL (SQLite has no replicas); unset it",
                    ))
                }
                _ => {
                    return Err(bad(
                        "DATABASE_READ_URL",
                        "must be a postgres:// URL of a read replica",
                    ))
                }
            },
        };

        let default_pool = match database_url {
            DatabaseUrl::Sqlite(_) => 4,
            DatabaseUrl::Postgres(_) => 10,
        };
        let db_pool_size = number(get("DB_POOL_SIZE"), "DB_POOL_SIZE", default_pool, 1, 200)?;
        let db_checkout_timeout_ms = number(
            get("DB_CHECKOUT_TIMEOUT_MS"),
            "DB_CHECKOUT_TIMEOUT_MS",
            1500,
            100,
            60_000,
        )?;

        let database_prepared_statements = flag(
            get("DATABASE_PREPARED_STATEMENTS"),
            "DATABASE_PREPARED_STATEMENTS",
            true,
        )?;
        let sqlite_synchronous_full = match get("SQLITE_SYNCHRONOUS")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("full") => true,
            Some("normal") => false,
            Some(v) => {
                return Err(bad(
                    "SQLITE_SYNCHRONOUS",
                    format!("must be full or normal, not {v:?}"),
                ))
            }
        };
        let retention_days = number(get("RETENTION_DAYS"), "RETENTION_DAYS", 90, 0, 36_500)?;

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

        let max_body_bytes = number(
            get("MAX_BODY_BYTES"),
            "MAX_BODY_BYTES",
            1024 * 1024,
            1024,
            64 * 1024 * 1024,
        )?;

        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let http_workers = number(get("HTTP_WORKERS"), "HTTP_WORKERS", cpus, 1, 256)?;
        let email_batch_size = number(get("EMAIL_BATCH_SIZE"), "EMAIL_BATCH_SIZE", 500, 1, 5000)?;
        let email_concurrency = number(get("EMAIL_CONCURRENCY"), "EMAIL_CONCURRENCY", 32, 1, 1000)?;
        let email_max_attempts =
            number(get("EMAIL_MAX_ATTEMPTS"), "EMAIL_MAX_ATTEMPTS", 8, 1, 100)?;
        let email_retry_base_seconds = number(
            get("EMAIL_RETRY_BASE_SECONDS"),
            "EMAIL_RETRY_BASE_SECONDS",
            30,
            0,
            86400,
        )?;
        let dispatch_interval_ms = number(
            get("DISPATCH_INTERVAL_MS"),
            "DISPATCH_INTERVAL_MS",
            1000,
            10,
            3_600_000,
        )?;
        let smtp_pool_size = number(get("SMTP_POOL_SIZE"), "SMTP_POOL_SIZE", 16, 1, 100)?;
        let public_link_per_minute = number(
            get("PUBLIC_LINK_PER_MINUTE"),
            "PUBLIC_LINK_PER_MINUTE",
            30,
            1,
            60_000,
        )?;
        let public_link_burst =
            number(get("PUBLIC_LINK_BURST"), "PUBLIC_LINK_BURST", 20, 1, 10_000)?;
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => v
                .split([',', ' '])
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    let p = p.trim();
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            bad(
                                "TRUSTED_PROXIES",
                                format!("must be a comma-separated list of addresses or CIDRs such as 10.0.0.0/8, not {p:?}"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let followup_sla_hours =
            number(get("FOLLOWUP_SLA_HOURS"), "FOLLOWUP_SLA_HOURS", 48, 1, 8760)?;
        let followup_sla_business_days = flag(
            get("FOLLOWUP_SLA_BUSINESS_DAYS"),
            "FOLLOWUP_SLA_BUSINESS_DAYS",
            false,
        )?;
        let followup_resolve_on_raise = flag(
            get("FOLLOWUP_RESOLVE_ON_RAISE"),
            "FOLLOWUP_RESOLVE_ON_RAISE",
            true,
        )?;
        let digest_hour_utc = number(get("DIGEST_HOUR_UTC"), "DIGEST_HOUR_UTC", 8, 0, 23)?;
        let resurvey_check_seconds = number(
            get("RESURVEY_CHECK_SECONDS"),
            "RESURVEY_CHECK_SECONDS",
            60,
            0,
            86400,
        )?;
        let followup_overdue_check_seconds = number(
            get("FOLLOWUP_OVERDUE_CHECK_SECONDS"),
            "FOLLOWUP_OVERDUE_CHECK_SECONDS",
            60,
            0,
            86400,
        )?;
        let dispatcher = match get("DISPATCHER").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(bad(
                    "DISPATCHER",
                    format!("must be on or off, not {other:?}"),
                ))
            }
        };
        let webhooks = match get("WEBHOOKS").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(bad("WEBHOOKS", format!("must be on or off, not {other:?}")))
            }
        };
        let webhook_max_attempts = number(
            get("WEBHOOK_MAX_ATTEMPTS"),
            "WEBHOOK_MAX_ATTEMPTS",
            10,
            1,
            100,
        )?;
        let webhook_retry_base_seconds = number(
            get("WEBHOOK_RETRY_BASE_SECONDS"),
            "WEBHOOK_RETRY_BASE_SECONDS",
            10,
            0,
            3600,
        )?;
        let webhook_timeout_seconds = number(
            get("WEBHOOK_TIMEOUT_SECONDS"),
            "WEBHOOK_TIMEOUT_SECONDS",
            10,
            1,
            300,
        )?;

        let email_lease_seconds = number(
            get("EMAIL_LEASE_SECONDS"),
            "EMAIL_LEASE_SECONDS",
            300,
            3,
            86400,
        )?;
        let webhook_lease_seconds = number(
            get("WEBHOOK_LEASE_SECONDS"),
            "WEBHOOK_LEASE_SECONDS",
            300,
            3,
            86400,
        )?;
        let webhook_disable_after_hours = number(
            get("WEBHOOK_DISABLE_AFTER_HOURS"),
            "WEBHOOK_DISABLE_AFTER_HOURS",
            120,
            0,
            8760,
        )?;
        let webhook_rotation_overlap_hours = number(
            get("WEBHOOK_ROTATION_OVERLAP_HOURS"),
            "WEBHOOK_ROTATION_OVERLAP_HOURS",
            24,
            0,
            720,
        )?;
        let instance_id = match get("INSTANCE_ID").map(|v| v.trim().to_string()) {
            None => None,
            Some(v) if v.len() <= 200 && v.chars().all(|c| c.is_ascii_graphic()) => Some(v),
            Some(v) => {
                return Err(bad(
                    "INSTANCE_ID",
                    format!(
                        "must be 1 to 200 printable ASCII characters without spaces, not {v:?}"
                    ),
                ))
            }
        };
        let alert_delay_seconds = number(
            get("ALERT_DELAY_SECONDS"),
            "ALERT_DELAY_SECONDS",
            120,
            0,
            86400,
        )?;
        let worker_stall_seconds = number(
            get("WORKER_STALL_SECONDS"),
            "WORKER_STALL_SECONDS",
            120,
            1,
            86400,
        )?;
        let followup_outcomes = outcomes(get("FOLLOWUP_OUTCOMES"))?;
        let webhook_allow_private =
            flag(get("WEBHOOK_ALLOW_PRIVATE"), "WEBHOOK_ALLOW_PRIVATE", false)?;
        let slack_webhook_url = match get("SLACK_WEBHOOK_URL").map(|v| v.trim().to_string()) {
            None => None,
            Some(v) => match slack_url_problem(&v, webhook_allow_private) {
                None => Some(v),
                Some(problem) => return Err(bad("SLACK_WEBHOOK_URL", problem)),
            },
        };
        let session_idle_hours =
            number(get("SESSION_IDLE_HOURS"), "SESSION_IDLE_HOURS", 12, 1, 720)?;
        let session_max_days = number(get("SESSION_MAX_DAYS"), "SESSION_MAX_DAYS", 30, 1, 365)?;

        Ok(Settings {
            database_url,
            database_read_url,
            db_pool_size,
            db_checkout_timeout_ms,
            database_prepared_statements,
            sqlite_synchronous_full,
            retention_days,
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
            email_batch_size,
            email_concurrency,
            email_max_attempts,
            email_retry_base_seconds,
            dispatch_interval_ms,
            smtp_pool_size,
            dispatcher,
            public_link_per_minute,
            public_link_burst,
            trusted_proxies,
            followup_sla_hours,
            followup_sla_business_days,
            followup_resolve_on_raise,
            digest_hour_utc,
            resurvey_check_seconds,
            followup_overdue_check_seconds,
            webhooks,
            webhook_max_attempts,
            webhook_retry_base_seconds,
            webhook_timeout_seconds,
            email_lease_seconds,
            webhook_lease_seconds,
            webhook_disable_after_hours,
            webhook_rotation_overlap_hours,
            webhook_allow_private,
            slack_webhook_url,
            instance_id,
            alert_delay_seconds,
            worker_stall_seconds,
            followup_outcomes,
            session_idle_hours,
            session_max_days,
        })
    }

    /// The name this process puts on its queue claims: `INSTANCE_ID`, else
    /// `{host name}:{port}` with the port actually bound. A restarted process with the same
    /// name takes its previous claims back at once (instead of waiting for their lease), so
    /// the name must be stable across restarts and unique among live replicas: the host
    /// name and port are, for one process per host and port (a container keeps its host
    /// name across restarts; a StatefulSet pod keeps it across reschedules).
    pub fn instance_id(&self, bound_port: u16) -> String {
        match &self.instance_id {
            Some(id) => id.clone(),
            None => format!("{}:{bound_port}", host_name()),
        }
    }

    /// How long a worker may go without a beat before `/readyz` calls it stalled: at least
    /// `WORKER_STALL_SECONDS`, and three idle polls.
    pub fn stall_seconds(&self) -> u64 {
        self.worker_stall_seconds
            .max(self.dispatch_interval_ms.saturating_mul(3) / 1000 + 1)
    }
}

/// The machine's host name (Linux), else `HOSTNAME`, else `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
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
    fn the_table_lists_exactly_the_variables_the_parser_reads() {
        let read = std::sync::Mutex::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|k| {
            read.lock().unwrap().insert(k.to_string());
            None
        })
        .unwrap();
        let read = read.into_inner().unwrap();
        let listed: std::collections::BTreeSet<String> =
            ENV_VARS.iter().map(|v| v.name.to_string()).collect();
        assert_eq!(read, listed, "ENV_VARS and Settings::from_lookup disagree");
    }

    #[test]
    fn config_masks_passwords_and_secrets_and_shows_defaults() {
        let env: HashMap<&str, &str> = [
            ("DATABASE_URL", "postgres://app:hunter2@db:5432/closeloop"),
            ("SMTP_URL", "smtps://mailer:s3cret@smtp.example.com"),
            ("BIND_ADDR", "0.0.0.0:9000"),
        ]
        .into();
        let lookup = |k: &str| env.get(k).map(|v| v.to_string());
        let s = Settings::from_lookup(lookup).unwrap();
        let all = effective(&s, lookup);
        let get = |n: &str| all.iter().find(|(name, _, _)| *name == n).unwrap().clone();
        assert_eq!(
            get("DATABASE_URL").1,
            "postgres://app:********@db:5432/closeloop"
        );
        assert_eq!(
            get("SMTP_URL").1,
            "smtps://mailer:********@smtp.example.com"
        );
        assert!(!format!("{all:?}").contains("hunter2") && !format!("{all:?}").contains("s3cret"));
        assert_eq!(
            get("BIND_ADDR"),
            ("BIND_ADDR", "0.0.0.0:9000".into(), false)
        );
        assert_eq!(get("SMTP_POOL_SIZE"), ("SMTP_POOL_SIZE", "16".into(), true));
        // An engine-dependent default is the one in effect: PostgreSQL's pool of 10.
        assert_eq!(get("DB_POOL_SIZE"), ("DB_POOL_SIZE", "10".into(), true));
        assert_eq!(mask("SIGNING_SECRET", "whsec_abc"), "********");
        assert_eq!(
            mask(
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/abcdef"
            ),
            "https://hooks.slack.com/********"
        );
    }

    #[test]
    fn the_slack_url_must_be_https_unless_private_addresses_are_allowed() {
        let url = |v: &str, private: &str| {
            settings(&[("SLACK_WEBHOOK_URL", v), ("WEBHOOK_ALLOW_PRIVATE", private)])
                .map(|s| s.slack_webhook_url)
        };
        assert_eq!(
            url("https://hooks.slack.com/services/T/B/x", "false").unwrap(),
            Some("https://hooks.slack.com/services/T/B/x".into())
        );
        let e = url("http://127.0.0.1:9/x", "false").unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
        assert!(url("http://127.0.0.1:9/x", "true").is_ok());
        assert!(url("hooks.slack.com/x", "true").is_err());
        assert!(
            url("x", "maybe").is_err(),
            "WEBHOOK_ALLOW_PRIVATE is a flag"
        );
        assert!(!settings(&[]).unwrap().webhook_allow_private);
    }

    #[test]
    fn a_multi_host_url_is_passed_through_and_its_password_masked() {
        let url = "postgres://app:hunter2@10.0.0.1:5432,10.0.0.2:5433/closeloop?target_session_attrs=read-write";
        let s = settings(&[("DATABASE_URL", url), ("DATABASE_READ_URL", url)]).unwrap();
        assert_eq!(s.database_url, DatabaseUrl::Postgres(url.into()));
        assert_eq!(
            mask("DATABASE_URL", url),
            "postgres://app:********@10.0.0.1:5432,10.0.0.2:5433/closeloop?target_session_attrs=read-write"
        );
        assert_eq!(
            mask("DATABASE_URL", "postgres://app@h1,h2/db"),
            "postgres://app@h1,h2/db"
        );
    }

    #[test]
    fn a_read_url_needs_postgresql() {
        let err = settings(&[("DATABASE_READ_URL", "postgres://r@replica/db")]).unwrap_err();
        assert_eq!(err.name, "DATABASE_READ_URL");
        assert!(
            err.to_string().contains("needs a PostgreSQL DATABASE_URL"),
            "{err}"
        );
        let err = settings(&[
            ("DATABASE_URL", "postgres://p@primary/db"),
            ("DATABASE_READ_URL", "replica.db"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("postgres:// URL"), "{err}");
        let s = settings(&[
            ("DATABASE_URL", "postgres://p@primary/db"),
            ("DATABASE_READ_URL", "postgres://r@replica/db"),
        ])
        .unwrap();
        assert_eq!(
            s.database_read_url.as_deref(),
            Some("postgres://r@replica/db")
        );
        assert!(settings(&[]).unwrap().database_read_url.is_none());
    }

    #[test]
    fn defaults_need_nothing_set() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("closeloop.db".into()));
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url.as_str(), "http://localhost:8080/");
        assert!(s.smtp_url.is_none());
        assert_eq!(s.log_format, LogFormat::Text);
        assert!(s.webhooks);
        assert_eq!(s.webhook_max_attempts, 10);
        assert_eq!(s.webhook_retry_base_seconds, 10);
        assert_eq!(s.webhook_timeout_seconds, 10);
        assert_eq!(s.webhook_disable_after_hours, 120);
        assert_eq!(s.webhook_rotation_overlap_hours, 24);
        assert_eq!(
            s.followup_outcomes,
            [
                "resolved_issue",
                "explained",
                "compensated",
                "feature_request",
                "no_action_needed",
                "could_not_reach"
            ]
        );
    }

    #[test]
    fn outcomes_are_a_list_of_identifiers() {
        let s = settings(&[("FOLLOWUP_OUTCOMES", " fixed , refunded,won_back_2 ")]).unwrap();
        assert_eq!(s.followup_outcomes, ["fixed", "refunded", "won_back_2"]);
        let err = settings(&[("FOLLOWUP_OUTCOMES", "fixed,Called Back")]).unwrap_err();
        assert!(err.to_string().contains("\"Called Back\""), "{err}");
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
            ("SQLITE_SYNCHRONOUS", "off"),
            ("MAX_BODY_BYTES", "12"),
            ("EMAIL_MAX_ATTEMPTS", "0"),
            ("EMAIL_CONCURRENCY", "many"),
            ("DISPATCHER", "maybe"),
            ("FOLLOWUP_SLA_BUSINESS_DAYS", "sometimes"),
            ("DIGEST_HOUR_UTC", "24"),
            ("WEBHOOKS", "yes"),
            ("WEBHOOK_MAX_ATTEMPTS", "0"),
            ("WEBHOOK_RETRY_BASE_SECONDS", "-1"),
            ("WEBHOOK_TIMEOUT_SECONDS", "0"),
            ("EMAIL_LEASE_SECONDS", "1"),
            ("WEBHOOK_LEASE_SECONDS", "x"),
            ("INSTANCE_ID", "a b"),
            ("ALERT_DELAY_SECONDS", "-5"),
            ("WORKER_STALL_SECONDS", "0"),
            ("FOLLOWUP_OUTCOMES", "resolved_issue,Called Back"),
            ("FOLLOWUP_OUTCOMES", "explained,,compensated"),
            ("FOLLOWUP_OUTCOMES", "explained,explained"),
            ("FOLLOWUP_OUTCOMES", "score_raised"),
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
