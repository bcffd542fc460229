#!/usr/bin/env python3
"""Idle-session helper for bench/run.sh (Debian's python3 only, no packages).

  hold.py backend HOLD_PORT API_PORT STATUS_FILE
      Accepts TCP connections on HOLD_PORT and holds them without reading or writing (a stand-in for a database
      that keeps idle sessions). Serves a fake Patroni GET /cluster on API_PORT whose only member, "hold", is the
      leader at 127.0.0.1:HOLD_PORT, so PatroniYarp can route a port to it. Writes the number of connections it
      holds to STATUS_FILE twice a second. Runs until SIGTERM.
  hold.py clients HOST PORT N STATUS_FILE
      Opens N connections to HOST:PORT, waits until they are all open, then watches them: a connection the far
      side closes counts as dropped. Writes "open=<n> failed=<n> dropped=<n>" to STATUS_FILE twice a second.
      Runs until SIGTERM.
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
import time

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

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(cluster)))
            self.end_headers()
            self.wfile.write(cluster)

        def log_message(self, *args):
            pass

    api = http.server.ThreadingHTTPServer(("127.0.0.1", api_port), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()

    listener = socket.create_server(("127.0.0.1", hold_port), backlog=4096)
    listener.settimeout(0.5)
    held = []
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
            held.append(conn)
        except socket.timeout:
            pass
        write_status(status, str(len(held)))
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
                data = key.fileobj.recv(1)
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
