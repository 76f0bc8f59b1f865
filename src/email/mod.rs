//! Email: building messages, the transport (SMTP or .eml files) and the send queue.

pub mod message;

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why a message was not sent, and whether trying again can help.
#[derive(Debug, Clone)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

/// Where messages go: an SMTP server (`SMTP_URL`) or `.eml` files in `OUTBOX_DIR`.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
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
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("SMTP_URL is not usable: {e}"))?
                    .timeout(Some(Duration::from_secs(20)))
                    .pool_config(
                        PoolConfig::new()
                            .max_size(pool_size)
                            .idle_timeout(Duration::from_secs(60)),
                    )
                    .build();
                Ok(Mailer::Smtp(transport))
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
            Mailer::Smtp(transport) => {
                transport
                    .send(message.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError {
                        permanent: e.is_permanent(),
                        message: smtp_error_text(&e),
                    })
            }
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

fn smtp_error_text(e: &lettre::transport::smtp::Error) -> String {
    let text = e.to_string();
    match e.status() {
        Some(code) if !text.contains(&code.to_string()) => format!("{code} {text}"),
        _ => text,
    }
}
