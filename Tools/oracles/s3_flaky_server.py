#!/usr/bin/env python3
"""A stand-in S3 endpoint that fails: the first FAILURES requests get 503 SlowDown (S3's XML error
body), later ones 200. GET /_count answers how many other requests came. Prints its port, then
serves on loopback until killed. For the retry tests of S3Client."""
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The test stops it with SIGTERM, which a parent may have left ignored or blocked.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
failures = int(sys.argv[1])
count = 0
ERROR = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>FLAKY1</RequestId></Error>"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        global count
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/_count":
            body = str(count).encode()
            status = 200
        else:
            count += 1
            status, body = (503, ERROR) if count <= failures else (200, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(3 if self.command == "HEAD" and status == 200 else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = answer


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
