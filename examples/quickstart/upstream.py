#!/usr/bin/env python3
"""The quickstart's demo upstream: answers every request with a JSON echo of what it received
(method, path, headers), so a curl through legate shows the rewrite and the added headers.

    python3 upstream.py [HOST] [PORT]      (default 127.0.0.1 9000)

It ignores SIGINT, so Ctrl-C in scripts/quickstart lets legate drain while the upstream is still
up; the script stops it with SIGTERM afterwards."""
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _echo(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {"method": self.command, "path": self.path, "headers": dict(self.headers)},
            indent=2,
        ).encode() + b"\n"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _echo

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: %s %s\n" % (self.address_string(), fmt % args))


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer((host, port), Echo)
    server.daemon_threads = True
    sys.stderr.write("upstream: listening on %s:%d\n" % (host, port))
    server.serve_forever()


if __name__ == "__main__":
    main()
