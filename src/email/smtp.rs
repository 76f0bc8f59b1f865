//! The SMTP client: a small pool of lettre SMTP connections over sockets we open ourselves.
//!
//! lettre's own `AsyncSmtpTransport` opens its sockets without `TCP_NODELAY`. lettre writes a
//! message's body and its terminating `<CRLF>.<CRLF>` as two writes, so Nagle's algorithm
//! holds the terminator back until the server acknowledges the body, and the server delays
//! that acknowledgement (about 40 ms on Linux) because it is waiting for the rest of the
//! message: every message stalled for 40 ms, which capped a connection at about 23 emails/s
//! (BENCHMARKS.md, section 1). Here every socket has `TCP_NODELAY`, and lettre speaks SMTP over
//! it through [`AsyncSmtpConnection::connect_with_transport`]: EHLO, STARTTLS and AUTH are
//! lettre's, so the protocol handling is the same as before.
//!
//! `SMTP_URL` forms are lettre's: `smtp://host:25` (plain), `smtp://…?tls=required` or
//! `?tls=opportunistic` (STARTTLS, port 587 by default), `smtps://host` (implicit TLS, port
//! 465), credentials as `user:pass@`, and an EHLO name as the path (`smtp://host/mail.example`).
//!
//! The pool holds at most `SMTP_POOL_SIZE` connections. A connection goes back to the pool
//! after a successful send; one that failed is dropped (lettre has already said QUIT on it).
//! A connection idle for more than a second is checked with NOOP before it is used, and one
//! idle for more than a minute is closed instead (servers drop idle clients after a while).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How the connection is secured.
#[derive(Clone)]
enum Security {
    /// `smtp://host` without `tls`: plain text.
    None,
    /// `?tls=opportunistic`: STARTTLS when the server offers it.
    Opportunistic(TlsParameters),
    /// `?tls=required`: STARTTLS or fail.
    Required(TlsParameters),
    /// `smtps://`: TLS from the first byte.
    Implicit(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    ),
}

/// Where and how to connect, read from `SMTP_URL`.
#[derive(Clone)]
struct Endpoint {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
}

/// Why a send did not go through.
pub enum SmtpError {
    /// An SMTP reply or a protocol/network error reported by lettre.
    Smtp(lettre::transport::smtp::Error),
    /// Connecting (DNS, TCP, implicit TLS) failed, or the whole exchange timed out.
    Io(String),
}

impl SmtpError {
    /// A 5xx reply: sending again will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SmtpError::Smtp(e) if e.is_permanent())
    }
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpError::Smtp(e) => {
                let text = e.to_string();
                match e.status() {
                    Some(code) if !text.contains(&code.to_string()) => write!(f, "{code} {text}"),
                    _ => f.write_str(&text),
                }
            }
            SmtpError::Io(text) => f.write_str(text),
        }
    }
}

impl From<lettre::transport::smtp::Error> for SmtpError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        SmtpError::Smtp(e)
    }
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// Checked before reuse with NOOP when idle longer than this.
const CHECK_AFTER: Duration = Duration::from_secs(1);
/// Closed instead of reused when idle longer than this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A pool of SMTP connections to one server.
pub struct SmtpPool {
    endpoint: Endpoint,
    idle: Mutex<Vec<Idle>>,
    slots: Semaphore,
    timeout: Duration,
}

impl SmtpPool {
    /// A pool for `url` (an `SMTP_URL`) of at most `size` connections; `timeout` bounds one
    /// whole send (connecting included).
    pub fn new(url: &str, size: u32, timeout: Duration) -> Result<SmtpPool, String> {
        Ok(SmtpPool {
            endpoint: Endpoint::parse(url)?,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size.max(1) as usize),
            timeout,
        })
    }

    /// Sends `body` (a formatted message) to the envelope's recipients.
    pub async fn send(&self, envelope: &Envelope, body: &[u8]) -> Result<(), SmtpError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SmtpError::Io("the SMTP pool is closed".into()))?;
        let attempt = async {
            let mut conn = self.checkout().await?;
            match conn.send(envelope, body).await {
                Ok(_) => {
                    self.checkin(conn);
                    Ok(())
                }
                // lettre has sent QUIT and marked the connection broken: drop it.
                Err(e) => Err(SmtpError::Smtp(e)),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(SmtpError::Io(format!(
                "no answer from the SMTP server within {} s",
                self.timeout.as_secs()
            ))),
        }
    }

    /// An idle connection that still works, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(Idle { mut conn, since }) = idle else {
                return self.endpoint.connect(self.timeout).await;
            };
            let age = since.elapsed();
            if age > IDLE_TIMEOUT || conn.has_broken() {
                conn.abort().await;
                continue;
            }
            if age <= CHECK_AFTER || conn.test_connected().await {
                return Ok(conn);
            }
        }
    }

    fn checkin(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Idle {
                conn,
                since: Instant::now(),
            });
    }
}

impl Endpoint {
    fn parse(raw: &str) -> Result<Endpoint, String> {
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("is not a URL: {e}"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let starttls = |host: &str| {
            TlsParameters::new(host.to_string()).map_err(|e| format!("TLS setup failed: {e}"))
        };
        let (security, default_port) = match (url.scheme(), tls_param.as_deref()) {
            ("smtp", None) => (Security::None, 25),
            ("smtp", Some("required")) => (Security::Required(starttls(&host)?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(starttls(&host)?), 587),
            ("smtps", _) => (implicit_tls(&host)?, 465),
            (scheme, tls) => {
                return Err(format!(
                    "scheme {scheme:?} with tls={tls:?} is not supported: use smtp://, \
                     smtp://…?tls=required, smtp://…?tls=opportunistic or smtps://"
                ))
            }
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|e| format!("credentials are not UTF-8: {e}"))
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        let path = url.path().trim_matches('/');
        let hello = if path.is_empty() {
            ClientId::default()
        } else {
            ClientId::Domain(path.to_string())
        };
        Ok(Endpoint {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
        })
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS if asked, EHLO, STARTTLS, AUTH.
    async fn connect(&self, timeout: Duration) -> Result<AsyncSmtpConnection, SmtpError> {
        let tcp = tcp_connect(&self.host, self.port, timeout).await?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(connector, name) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| SmtpError::Io(format!("TLS handshake failed: {e}")))?;
                Box::new(TlsTcp(tls))
            }
            _ => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
        match &self.security {
            Security::Opportunistic(params) if conn.can_starttls() => {
                conn.starttls(params.clone(), &self.hello).await?
            }
            Security::Required(params) => conn.starttls(params.clone(), &self.hello).await?,
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

/// The client side of implicit TLS: rustls with the Mozilla roots (webpki-roots), as lettre
/// and reqwest use.
fn implicit_tls(host: &str) -> Result<Security, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
    Ok(Security::Implicit(
        tokio_rustls::TlsConnector::from(Arc::new(config)),
        name,
    ))
}

/// Resolves `host` and connects to the first address that answers, with `TCP_NODELAY`.
async fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, SmtpError> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| SmtpError::Io(format!("cannot resolve {host}: {e}")))?;
    let mut last = format!("{host} resolved to no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                stream
                    .set_nodelay(true)
                    .map_err(|e| SmtpError::Io(format!("cannot set TCP_NODELAY: {e}")))?;
                return Ok(stream);
            }
            Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
            Err(_) => last = format!("connecting to {addr} timed out"),
        }
    }
    Err(SmtpError::Io(last))
}

/// An implicit-TLS stream, given to lettre as its transport.
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl fmt::Debug for TlsTcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTcp")
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_read_as_lettre_reads_them() {
        let plain = Endpoint::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 2525));
        assert!(matches!(plain.security, Security::None));
        assert!(plain.credentials.is_none());

        let submission =
            Endpoint::parse("smtp://me%40x.com:p%2Fw@mail.example.com?tls=required").unwrap();
        assert_eq!(submission.port, 587);
        assert!(matches!(submission.security, Security::Required(_)));
        assert_eq!(
            submission.credentials,
            Some(Credentials::new("me@x.com".into(), "p/w".into()))
        );

        let implicit = Endpoint::parse("smtps://smtp.example.com/mail.example.org").unwrap();
        assert_eq!(implicit.port, 465);
        assert!(matches!(implicit.security, Security::Implicit(..)));
        assert_eq!(implicit.hello, ClientId::Domain("mail.example.org".into()));

        let v6 = Endpoint::parse("smtp://[::1]:25").unwrap();
        assert_eq!(v6.host, "::1");
        assert!(Endpoint::parse("smtp://h?tls=sometimes").is_err());
        assert!(Endpoint::parse("http://h").is_err());
    }
}
