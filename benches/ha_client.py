#!/usr/bin/env python3
"""Helpers of benches/ha.sh (standard library only).

  ha_client.py sinks DIR SMTP_PORT HOOK_PORT
      An SMTP sink that records every message's Message-ID with the time it was received
      (DIR/smtp.log), slowly (100 ms per message, so a dispatch is in flight during a kill),
      and a webhook receiver that records every `webhook-id` (DIR/hooks.log) and answers 204.

  ha_client.py load DIR SECONDS RATE BASE_URL[,BASE_URL...] < tokens
      Answers the invitations whose tokens are on stdin at RATE answers per second, spread
      over the servers round-robin (POST /s/{token}, not following the redirect), each
      request with a 10 s timeout. Writes DIR/acked.log (token, score of every 303) and
      DIR/load.json (what the clients saw, second by second).
"""
import http.client
import json
import socketserver
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def utc_now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


class Smtp(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.reply("220 ha-sink ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-ha-sink\r\n250 8BITMIME\r\n")
            elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                message_id = ""
                while True:
                    data = self.rfile.readline()
                    if not data or data in (b".\r\n", b".\n"):
                        break
                    if not message_id and data.lower().startswith(b"message-id:"):
                        message_id = data.split(b":", 1)[1].strip().decode().strip("<>")
                time.sleep(0.1)
                with self.server.lock:
                    with open(self.server.log, "a") as f:
                        f.write(f"{message_id}\t{utc_now()}\n")
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 unknown")


class Hooks(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        with self.server.lock:
            with open(self.server.log, "a") as f:
                f.write(f"{self.headers.get('webhook-id', '')}\t{utc_now()}\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def sinks(out, smtp_port, hook_port):
    class SmtpServer(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    smtp = SmtpServer(("127.0.0.1", int(smtp_port)), Smtp)
    smtp.log, smtp.lock = f"{out}/smtp.log", threading.Lock()
    hooks = ThreadingHTTPServer(("127.0.0.1", int(hook_port)), Hooks)
    hooks.daemon_threads = True
    hooks.log, hooks.lock = f"{out}/hooks.log", threading.Lock()
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    hooks.serve_forever()


def load(out, seconds, rate, bases):
    seconds, rate = float(seconds), float(rate)
    tokens = [t.strip() for t in sys.stdin if t.strip()]
    targets = [urllib.parse.urlsplit(b) for b in bases.split(",")]
    lock = threading.Lock()
    acked = open(f"{out}/acked.log", "w")
    events = []  # (start offset, seconds taken, status or error, retry-after)
    start = time.monotonic()
    next_token = [0]

    def one(i):
        with lock:
            if next_token[0] >= len(tokens):
                return
            token = tokens[next_token[0]]
            next_token[0] += 1
        score = (i * 7) % 11
        t = targets[i % len(targets)]
        began = time.monotonic()
        status, retry = None, None
        try:
            conn = http.client.HTTPConnection(t.hostname, t.port, timeout=10)
            conn.request(
                "POST",
                f"/s/{token}",
                body=f"score={score}&comment=ha",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            res = conn.getresponse()
            res.read()
            status, retry = res.status, res.getheader("Retry-After")
            conn.close()
        except Exception as e:  # a refused connection, a timeout: what a client saw
            status = type(e).__name__
        took = time.monotonic() - began
        with lock:
            events.append((began - start, took, status, retry))
            if status == 303:
                acked.write(f"{token}\t{score}\n")
                acked.flush()

    threads = []
    i = 0
    while time.monotonic() - start < seconds:
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        th = threading.Thread(target=one, args=(i,))
        th.start()
        threads.append(th)
        i += 1
    for th in threads:
        th.join()
    acked.close()
    with open(f"{out}/load.json", "w") as f:
        json.dump(events, f)


if __name__ == "__main__":
    if sys.argv[1] == "sinks":
        sinks(*sys.argv[2:5])
    elif sys.argv[1] == "load":
        load(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
