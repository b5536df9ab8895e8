"""A file server on 127.0.0.1 for download tests: Range requests and scripted failures.

`serve({"/path": bytes, ...})` is a context manager yielding a `LocalServer`:
`server.url("/path")`, `server.requests` (method, path, Range header) and
`server.faults[path]`, one of:
  "truncate"    send Content-Length of the whole file but only its first half;
  "no-length"   send the first half without a Content-Length header;
  "ignore-range" answer a Range request with the whole file (200).
Paths not in the table answer 404. `server.stop()` shuts it down early.
"""

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server = self.server.owner
        rng = self.headers.get("Range")
        server.requests.append(("GET", self.path, rng))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        fault = server.faults.get(self.path)
        start = 0
        if rng and fault != "ignore-range":
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
        body = data[start:]
        if fault == "no-length":
            body = body[: len(body) // 2]
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "truncate":
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()


class LocalServer:
    def __init__(self, files):
        self.files = dict(files)
        self.faults = {}
        self.requests = []
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
