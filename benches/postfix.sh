#!/usr/bin/env bash
# Starts Debian's Postfix as a real MTA that accepts every message on 127.0.0.1:$PORT (default
# 2526) and discards it after queueing it (smtpd → cleanup → queue on disk → qmgr → the
# discard transport), for `benches/dispatch.rs` with BENCH_SMTP_URL=smtp://127.0.0.1:2526.
# Installs postfix if missing. Changes the machine's Postfix configuration: run it on a
# benchmark machine, not on a mail server. `bash benches/postfix.sh stop` stops it.
set -euo pipefail
PORT=${PORT:-2526}
[ "$(id -u)" -eq 0 ] || { echo "benches/postfix.sh must run as root" >&2; exit 1; }
if [ "${1:-}" = stop ]; then postfix stop 2>/dev/null || true; exit 0; fi
if ! command -v postfix >/dev/null; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
[ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
postconf -e \
    "myhostname=bench.localdomain" \
    "inet_interfaces=loopback-only" \
    "inet_protocols=ipv4" \
    "mydestination=" \
    "mynetworks=127.0.0.0/8" \
    "smtpd_recipient_restrictions=permit_mynetworks,reject" \
    "default_transport=discard:benchmark" \
    "relay_transport=discard:benchmark" \
    "local_transport=discard:benchmark" \
    "smtpd_client_connection_count_limit=0" \
    "smtpd_client_connection_rate_limit=0" \
    "smtpd_client_message_rate_limit=0" \
    "default_process_limit=200" \
    "maillog_file=/var/log/postfix-bench.log"
postconf -M "$PORT/inet=$PORT inet n - n - - smtpd"
postfix check
if postfix status >/dev/null 2>&1; then postfix reload >/dev/null; else postfix start >/dev/null; fi
for _ in $(seq 1 50); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1).close()" 2>/dev/null; then
        echo "postfix accepting on 127.0.0.1:$PORT (messages are queued, then discarded)"
        exit 0
    fi
    sleep 0.2
done
echo "postfix did not start listening on $PORT" >&2
exit 1
