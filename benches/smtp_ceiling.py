#!/usr/bin/env python3
"""The ceiling of an SMTP server for the dispatch benchmark: N messages of about the size of
a survey email over T connections from a bare client (smtplib, TCP_NODELAY, one thread per
connection), no database and no rendering. Usage: python3 benches/smtp_ceiling.py N T PORT
(e.g. 4000 16 2526 for the Postfix of benches/postfix.sh)."""
import smtplib
import socket
import sys
import threading
import time

n, conns, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = "Subject: ceiling\r\nFrom: a@example.com\r\nTo: b@example.com\r\n\r\n" + ("x" * 76 + "\r\n") * 60


def worker(count):
    s = smtplib.SMTP("127.0.0.1", port)
    s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(count):
        s.sendmail("a@example.com", ["b@example.com"], body)
    s.quit()


start = time.time()
threads = [threading.Thread(target=worker, args=(n // conns,)) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
took = time.time() - start
print(f"{n} messages over {conns} connections in {took:.2f}s = {n / took:.0f}/s")
