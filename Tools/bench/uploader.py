"""Shared by the upload benchmarks: N threads, one keep-alive HTTP connection each, taking work
items from one queue; returns (seconds, failures)."""
import http.client
import os
import threading
import time


def files(folder):
    """Every file under `folder`, in a stable order."""
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)


def post(conn, path, body, headers):
    """One POST on a keep-alive connection; returns the HTTP status once the response is read."""
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def rates(paths, elapsed):
    """`seconds=… instances_per_s=… MB_per_s=…` for uploading `paths` in `elapsed` seconds."""
    size = sum(os.path.getsize(f) for f in paths)
    return f"seconds={elapsed:.2f} instances_per_s={len(paths) / elapsed:.1f} MB_per_s={size / 1e6 / elapsed:.1f}"


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
