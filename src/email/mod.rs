//! Email: building messages, the transport (SMTP or .eml files) and the send queue.

pub mod message;
pub mod smtp;

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use lettre::Message;

use self::smtp::SmtpPool;

/// Why a message was not sent, and whether trying again can help.
#[derive(Debug, Clone)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

/// Where messages go: an SMTP server (`SMTP_URL`) or `.eml` files in `OUTBOX_DIR`.
#[derive(Clone)]
pub enum Mailer {
    Smtp(Arc<SmtpPool>),
    File(PathBuf),
}

impl Mailer {
    /// The SMTP transport for `SMTP_URL` (pooled), or the file outbox when unset.
    pub fn from_settings(
        smtp_url: Option<&str>,
        outbox: &std::path::Path,
        pool_size: u32,
    ) -> anyhow::Result<Mailer> {
        match smtp_url {
            Some(url) => {
                let pool = SmtpPool::new(url, pool_size, Duration::from_secs(20))
                    .map_err(|e| anyhow::anyhow!("SMTP_URL is not usable: {e}"))?;
                Ok(Mailer::Smtp(Arc::new(pool)))
            }
            None => Ok(Mailer::File(outbox.to_path_buf())),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp(_) => "smtp".into(),
            Mailer::File(dir) => format!("files in {}", dir.display()),
        }
    }

    /// Sends one message. SMTP 5xx replies are permanent; everything else (4xx replies,
    /// refused or dropped connections, timeouts) is transient and worth retrying.
    pub async fn send(&self, message: &Message, file_stem: &str) -> Result<(), SendError> {
        match self {
            Mailer::Smtp(pool) => pool
                .send(message.envelope(), &message.formatted())
                .await
                .map_err(|e| SendError {
                    permanent: e.is_permanent(),
                    message: e.to_string(),
                }),
            Mailer::File(dir) => {
                let transient = |e: std::io::Error| SendError {
                    permanent: false,
                    message: format!("cannot write to OUTBOX_DIR {}: {e}", dir.display()),
                };
                tokio::fs::create_dir_all(dir).await.map_err(transient)?;
                // Write then rename, so a reader never sees half a file.
                let tmp = dir.join(format!(".{file_stem}.tmp"));
                let path = dir.join(format!("{file_stem}.eml"));
                tokio::fs::write(&tmp, message.formatted())
                    .await
                    .map_err(transient)?;
                tokio::fs::rename(&tmp, &path).await.map_err(transient)?;
                Ok(())
            }
        }
    }
}
