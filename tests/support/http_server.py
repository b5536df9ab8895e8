"""A file server on 127.0.0.1 for download tests: Range requests and scripted failures.

`serve({"/path": bytes, ...})` is a context manager yielding a `LocalServer`:
`server.url("/path")`, `server.requests` (method, path, Range header),
`server.headers` (every request's headers, a dict each) and
`server.faults[path]`, one of:
  "truncate"      send Content-Length of the whole file but only its first half;
  "no-length"     send the first half without a Content-Length header;
  "bad-length"    send the whole file with `Content-Length: 12abc`;
  "ignore-range"  answer a Range request with the whole file (200);
  "always-206"    answer every request, with or without Range, with a 206
                  and a Content-Range for the rest of the file;
  "ignore-if-range" honour Range even when If-Range names another version
                  (a broken server: the body is the new file's rest);
  "endless"       200 without Content-Length and a body that never ends;
  "trickle"       the right Content-Length, then one byte every 50 ms.
Every answer carries an ETag and a Last-Modified that change with the file's
bytes; `If-Range` is honoured (a stale validator gets the whole file, 200),
as HTTP says. Paths not in the table answer 404. `server.stop()` shuts it
down early.
"""

import contextlib
import email.utils
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def etag_of(data):
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def last_modified_of(data):
    # A date that changes with the bytes (the digest's first 24 bits as seconds).
    seconds = 1_500_000_000 + int(hashlib.sha256(data).hexdigest()[:6], 16)
    return email.utils.formatdate(seconds, usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server = self.server.owner
        rng = self.headers.get("Range")
        server.requests.append(("GET", self.path, rng))
        server.headers.append(dict(self.headers))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        fault = server.faults.get(self.path)
        if fault == "endless":
            self._endless()
            return
        if_range = self.headers.get("If-Range")
        current = (etag_of(data), last_modified_of(data))
        if rng and if_range is not None and if_range not in current:
            if fault != "ignore-if-range":
                rng = None  # another version: the whole file, 200
        start = 0
        if fault == "always-206" and not rng:
            start = len(data) // 2
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        elif rng and fault != "ignore-range":
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("ETag", current[0])
        self.send_header("Last-Modified", current[1])
        body = data[start:]
        if fault == "no-length":
            body = body[: len(body) // 2]
            self.send_header("Connection", "close")
        elif fault == "bad-length":
            self.send_header("Content-Length", "12abc")
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault in ("truncate", "no-length", "bad-length"):
            self.close_connection = True
        if fault == "truncate":
            body = body[: len(body) // 2]
        if fault == "trickle":
            self._trickle(body)
            return
        self.wfile.write(body)
        self.wfile.flush()

    def _endless(self):
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        block = b"\0" * (1 << 16)
        with contextlib.suppress(OSError):
            while not self.server.owner.stopping:
                self.wfile.write(block)

    def _trickle(self, body):
        self.close_connection = True
        with contextlib.suppress(OSError):
            for i in range(len(body)):
                if self.server.owner.stopping:
                    return
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.05)


class LocalServer:
    def __init__(self, files):
        self.files = dict(files)
        self.faults = {}
        self.requests = []
        self.headers = []
        self.stopping = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self._running = True

    def url(self, path):
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def stop(self):
        if self._running:
            self.stopping = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._running = False


@contextlib.contextmanager
def serve(files):
    server = LocalServer(files)
    try:
        yield server
    finally:
        server.stop()
