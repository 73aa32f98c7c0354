"""Shared by the upload benchmarks: N threads, one keep-alive HTTP connection each, taking work
items from one queue; returns (seconds, failures)."""
import http.client
import threading
import time


def run(host, port, threads, items, send):
    """`send(conn, item)` makes one request and returns its HTTP status."""
    lock = threading.Lock()
    queue = list(reversed(items))
    failures = []

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=600)
        while True:
            with lock:
                if not queue:
                    break
                item = queue.pop()
            status = send(conn, item)
            if status != 200:
                failures.append((item, status))
        conn.close()

    start = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - start, failures
