#!/usr/bin/env python3
"""Webhook receivers for Tools/bench-webhooks: on PORT_OK an HTTP server answering every POST 200 at
once (counting them); on PORT_HANG a socket that accepts connections, reads what comes and never
answers (a receiver that hangs). Prints the POST count on SIGTERM. Usage: webhook_receivers.py PORT_OK PORT_HANG"""
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ok_port, hang_port = int(sys.argv[1]), int(sys.argv[2])
count = 0
lock = threading.Lock()


class OK(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def hang():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", hang_port))
    s.listen(64)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)  # never answered, never closed
        threading.Thread(target=lambda c=c: [c.recv(65536) for _ in iter(int, 1)], daemon=True).start()


def done(*_):
    print(f"receiver posts={count}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, done)
threading.Thread(target=hang, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", ok_port), OK).serve_forever()
