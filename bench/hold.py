#!/usr/bin/env python3
"""Idle-session helper for bench/run.sh (Debian's python3 only, no packages).

  hold.py backend HOLD_PORT API_PORT STATUS_FILE
      Accepts TCP connections on HOLD_PORT, answers each one's startup packet as a trusting PostgreSQL would
      (AuthenticationOk, ReadyForQuery) and then holds it idle (a stand-in for a database that keeps idle sessions:
      PostgreSQL will not take thousands). Serves a fake Patroni API on API_PORT: GET /cluster whose only member,
      "hold", is the leader at 127.0.0.1:HOLD_PORT, and GET /primary confirming it is a running primary, so
      PatroniYarp routes a leader port to it. A session whose far side closes is closed too, so rounds can follow
      each other. Writes "<accepted so far> <open now>" to STATUS_FILE twice a second. Runs until SIGTERM.
  hold.py clients HOST PORT N STATUS_FILE
      Opens N connections to HOST:PORT, each sending a plaintext startup packet as a PostgreSQL client does, waits
      until they are all open, then watches them: a connection the far side closes counts as dropped. Writes
      "open=<n> failed=<n> dropped=<n>" to STATUS_FILE twice a second. Runs until SIGTERM.
"""
import http.server
import os
import json
import resource
import selectors
import signal
import socket
import sys
import threading
import struct
import time

# A protocol 3.0 StartupMessage for user "bench", and a trusting server's whole answer to it.
STARTUP = (lambda body: struct.pack("!I", len(body) + 4) + body)(struct.pack("!I", 196608) + b"user\0bench\0\0")
LOGIN_OK = b"R" + struct.pack("!II", 8, 0) + b"Z" + struct.pack("!I", 5) + b"I"

# This machine allows 20 000 open files per process (hard limit); the default soft limit is far lower.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())


def write_status(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.replace(path + ".tmp", path)


def backend(hold_port, api_port, status):
    cluster = json.dumps({"members": [{"name": "hold", "role": "leader", "state": "running",
                                       "api_url": f"http://127.0.0.1:{api_port}/patroni",
                                       "host": "127.0.0.1", "port": hold_port, "timeline": 1}]}).encode()
    primary = json.dumps({"state": "running", "role": "master", "timeline": 1}).encode()

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = primary if self.path.startswith("/primary") else cluster
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    api = http.server.ThreadingHTTPServer(("127.0.0.1", api_port), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()

    listener = socket.create_server(("127.0.0.1", hold_port), backlog=4096)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    accepted = 0
    answered = set()
    last = 0.0
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.5):
            if key.fileobj is listener:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                accepted += 1
                sel.register(conn, selectors.EVENT_READ)
                continue
            # The session's startup packet is answered once; after that the session stays idle until it closes.
            conn = key.fileobj
            try:
                data = conn.recv(65536)
                if data and conn not in answered:
                    conn.sendall(LOGIN_OK)
                    answered.add(conn)
            except OSError:
                data = b""
            if not data:
                sel.unregister(conn)
                answered.discard(conn)
                conn.close()
        if time.monotonic() - last > 0.5:
            write_status(status, f"{accepted} {len(sel.get_map()) - 1}")
            last = time.monotonic()
    api.shutdown()


def clients(host, port, n, status):
    sel = selectors.DefaultSelector()
    opened = failed = dropped = 0
    for _ in range(n):
        if stop.is_set():
            break
        s = socket.socket()
        try:
            s.connect((host, port))
            s.sendall(STARTUP)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            opened += 1
        except OSError:
            s.close()
            failed += 1
        if (opened + failed) % 500 == 0:
            write_status(status, f"open={opened} failed={failed} dropped={dropped}")
    last = 0.0
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.5):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                opened -= 1
                dropped += 1
        if time.monotonic() - last > 0.5:
            write_status(status, f"open={opened} failed={failed} dropped={dropped}")
            last = time.monotonic()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "backend":
        backend(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 6 and sys.argv[1] == "clients":
        clients(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(__doc__)
