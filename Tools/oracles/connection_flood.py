#!/usr/bin/env python3
"""Connection abuse against a running `tessera serve` (Docs/security.md, "Limits"), with asyncio.

Usage: connection_flood.py PORT flood SLOWLORIS IDLE SECONDS
       connection_flood.py PORT cap CONNECTIONS

flood: SLOWLORIS connections send a request's headers one byte a second and IDLE connections
send nothing, each reopened when the server closes it, for SECONDS; meanwhile another client asks
for /health, a QIDO search and a stored frame every 0.5 s. Also: an upload that stalls after 64 KiB,
one announced (Content-Length) but never sent, and a Content-Length above the request cap.
cap: opens CONNECTIONS idle connections (the server's --max-connections), then times a request on
a new connection (queued until a slot frees) and one on a connection already served.
Prints a JSON report of measurements; the Swift test judges them.
"""
import asyncio
import json
import random
import resource
import sys
import time

HOST = "127.0.0.1"
PORT = int(sys.argv[1])
MODE = sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def exchange(raw, timeout=10.0, reader_writer=None):
    """Sends `raw` (a request with Connection: close unless on a kept connection) and reads the
    response head and its Content-Length body. Returns (status, seconds, body)."""
    start = time.monotonic()
    if reader_writer is None:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, PORT), timeout)
    else:
        r, w = reader_writer
    w.write(raw)
    await w.drain()
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await asyncio.wait_for(r.readexactly(length), timeout) if length else b""
    if reader_writer is None:
        w.close()
    return status, time.monotonic() - start, body


def get(path, accept="application/json", close=True):
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: {accept}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()


async def lifetime_until_closed(r, w, start):
    """Seconds from `start` until the server closes the connection."""
    try:
        while await r.read(65536):
            pass
    except (ConnectionError, OSError):
        pass
    return time.monotonic() - start


async def connect():
    """A new connection after a random pause of up to 0.5 s (attackers that all reconnect at the
    same instant measure the accept queue, not the server), or (None, None) when it fails."""
    await asyncio.sleep(random.random() / 2)
    try:
        return await asyncio.open_connection(HOST, PORT)
    except OSError:
        await asyncio.sleep(0.1)
        return None, None


async def slowloris(end, lifetimes):
    data = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100000
    while time.monotonic() < end:
        r, w = await connect()
        if r is None:
            continue
        start = time.monotonic()
        closed = asyncio.ensure_future(lifetime_until_closed(r, w, start))
        try:
            for b in data:
                if closed.done() or time.monotonic() > end:
                    break
                w.write(bytes([b]))
                await w.drain()
                await asyncio.sleep(1.0)
        except (ConnectionError, OSError):
            pass
        if closed.done():
            lifetimes.append(closed.result())
        else:
            closed.cancel()
        w.close()


async def idle(end, lifetimes):
    while time.monotonic() < end:
        r, w = await connect()
        if r is None:
            continue
        start = time.monotonic()
        try:
            lifetimes.append(await asyncio.wait_for(lifetime_until_closed(r, w, start), max(end - start, 0.01)))
        except asyncio.TimeoutError:
            pass
        w.close()


async def stalled_upload(sent):
    """An upload that announces 5 MB and sends `sent` bytes; seconds until the server closes it."""
    r, w = await asyncio.open_connection(HOST, PORT)
    w.write(b"POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Type: application/dicom\r\n"
            b"Content-Length: 5000000\r\n\r\n" + b"\0" * sent)
    await w.drain()
    start = time.monotonic()
    try:
        return await asyncio.wait_for(lifetime_until_closed(r, w, start), 30)
    except asyncio.TimeoutError:
        return None


async def first_frame_path():
    _, _, body = await exchange(get("/dicomweb/studies"))
    study = json.loads(body)[0]["0020000D"]["Value"][0]
    _, _, body = await exchange(get(f"/dicomweb/studies/{study}/instances"))
    item = json.loads(body)[0]
    series, sop = item["0020000E"]["Value"][0], item["00080018"]["Value"][0]
    return f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1"


async def probe(frame, report):
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    for name, raw in (("health", get("/health")), ("qido", get("/dicomweb/studies?PatientName=*")),
                      ("frame", get(frame, accept))):
        try:
            status, seconds, _ = await exchange(raw, timeout=10)
        except (asyncio.TimeoutError, OSError) as e:
            report["probe_failures"].append(f"{name}: {type(e).__name__}")
            continue
        if status != 200:
            report["probe_failures"].append(f"{name}: {status}")
        report["probe_seconds"][name] = max(report["probe_seconds"].get(name, 0), round(seconds, 3))
        report["all_probe_seconds"].append(round(seconds, 3))
        report["probes"] += 1


async def probes(seconds):
    """The other client, in a process of its own: the attackers' event loop must not delay it."""
    frame = await first_frame_path()
    report = {"probes": 0, "probe_failures": [], "probe_seconds": {}, "all_probe_seconds": []}
    # A declared length above the cap is answered before any body byte is sent.
    try:
        status, secs, _ = await exchange(b"POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Type: application/dicom\r\n"
                                         b"Content-Length: 100000000000\r\n\r\n", timeout=10)
        report["too_large"] = {"status": status, "seconds": round(secs, 3)}
    except (asyncio.TimeoutError, OSError) as e:
        report["too_large"] = {"error": type(e).__name__}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await probe(frame, report)
        await asyncio.sleep(0.5)
    return report


async def flood(slow, idle_count, seconds):
    report = {}
    slow_lifetimes, idle_lifetimes = [], []
    end = time.monotonic() + seconds
    attackers = [asyncio.ensure_future(slowloris(end, slow_lifetimes)) for _ in range(slow)]
    attackers += [asyncio.ensure_future(idle(end, idle_lifetimes)) for _ in range(idle_count)]
    uploads = asyncio.ensure_future(asyncio.gather(stalled_upload(65536), stalled_upload(0)))
    await asyncio.sleep(1.0)  # the attack in place
    other = await asyncio.create_subprocess_exec(sys.executable, __file__, str(PORT), "probe", str(seconds - 1.5),
                                                 stdout=asyncio.subprocess.PIPE)
    out, _ = await other.communicate()
    report.update(json.loads(out))
    await asyncio.gather(*attackers)
    report["stalled_upload_seconds"], report["unsent_upload_seconds"] = await uploads
    report["slowloris_closed"] = len(slow_lifetimes)
    report["slowloris_max_lifetime"] = round(max(slow_lifetimes, default=0), 3)
    report["idle_closed"] = len(idle_lifetimes)
    report["idle_max_lifetime"] = round(max(idle_lifetimes, default=0), 3)
    return report


async def cap(connections):
    report = {}
    # One connection served first and kept open: it must keep being served past the cap.
    kept = await asyncio.open_connection(HOST, PORT)
    status, _, _ = await exchange(get("/health", close=False), reader_writer=kept)
    held = []
    for _ in range(connections - 1):
        held.append(await asyncio.open_connection(HOST, PORT))
    await asyncio.sleep(0.3)
    start = time.monotonic()
    queued = asyncio.ensure_future(exchange(get("/health"), timeout=30))
    await asyncio.sleep(0.3)
    status, seconds, _ = await exchange(get("/health", close=False), reader_writer=kept)
    report["kept_status"], report["kept_seconds"] = status, round(seconds, 3)
    report["queued_done_early"] = queued.done()
    status, _, _ = await queued
    report["queued_status"], report["queued_seconds"] = status, round(time.monotonic() - start, 3)
    for r, w in held:
        w.close()
    return report


if MODE == "flood":
    result = asyncio.run(flood(int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
elif MODE == "probe":
    result = asyncio.run(probes(float(sys.argv[3])))
else:
    result = asyncio.run(cap(int(sys.argv[3])))
print(json.dumps(result))
