//! A real SMTP server for tests (mailin-embedded, in-process), with scripted replies.

use std::collections::VecDeque;
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::{Handler, Response, Server};

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parsable message")
    }
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    /// Replies to give to the next RCPTs (then 250).
    script: VecDeque<u16>,
    /// A reply for every RCPT, overriding the script.
    always: Option<u16>,
    attempts: usize,
    /// How long to wait before accepting each message (a slow relay).
    delay_ms: u64,
}

#[derive(Clone)]
struct Recorder {
    shared: Arc<Mutex<Shared>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Recorder {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_string();
        self.to = to.to_vec();
        self.data.clear();
        mailin_embedded::response::START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    // Scripted failures are given at RCPT, as real servers do for unknown mailboxes (5xx) and
    // greylisting (4xx). (mailin stays in DATA state after an error reply at the end of DATA.)
    fn rcpt(&mut self, _to: &str) -> Response {
        let mut shared = self.shared.lock().unwrap();
        shared.attempts += 1;
        match shared
            .always
            .or_else(|| shared.script.pop_front())
            .unwrap_or(250)
        {
            250 => mailin_embedded::response::OK,
            code => Response::custom(code, format!("scripted reply {code}")),
        }
    }

    fn data_end(&mut self) -> Response {
        let delay = self.shared.lock().unwrap().delay_ms;
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let mut shared = self.shared.lock().unwrap();
        shared.received.push(Received {
            from: self.from.clone(),
            to: self.to.clone(),
            data: std::mem::take(&mut self.data),
        });
        mailin_embedded::response::OK
    }

    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        mailin_embedded::response::OK
    }
}

pub struct TestSmtp {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

/// A free loopback port (for a server that starts later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestSmtp {
    /// Starts a server on a random port that accepts everything.
    pub fn start() -> TestSmtp {
        Self::start_on(free_port())
    }

    /// Starts a server on `port`.
    pub fn start_on(port: u16) -> TestSmtp {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP port");
        let recorder = Recorder {
            shared: shared.clone(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        std::thread::spawn(move || {
            let mut server = Server::new(recorder);
            server
                .with_name("test-smtp")
                .with_num_threads(64)
                .with_tcp_listener(listener);
            let _ = server.serve();
        });
        TestSmtp { port, shared }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next RCPT commands get these replies, then 250.
    pub fn script(&self, codes: &[u16]) {
        self.shared
            .lock()
            .unwrap()
            .script
            .extend(codes.iter().copied());
    }

    /// Every RCPT command gets this reply.
    pub fn always(&self, code: u16) {
        self.shared.lock().unwrap().always = Some(code);
    }

    /// Every RCPT command gets 250 again (undoes `always`).
    pub fn accept_all(&self) {
        self.shared.lock().unwrap().always = None;
    }

    /// Waits `ms` before accepting each message, as a slow relay does.
    pub fn delay(&self, ms: u64) {
        self.shared.lock().unwrap().delay_ms = ms;
    }

    /// How many times each Message-ID arrived.
    pub fn per_message_id(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for r in self.received() {
            let id = r
                .parsed()
                .message_id()
                .map(str::to_string)
                .unwrap_or_default();
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    pub fn attempts(&self) -> usize {
        self.shared.lock().unwrap().attempts
    }

    /// Waits until at least `n` messages arrived (panics after `secs`).
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} messages within {secs}s, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
