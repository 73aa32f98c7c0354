#!/usr/bin/env python3
"""HTTP/2 checks of a running `tessera serve` (Tests/DICOMwebTests/ServeHTTP2Tests.swift), with httpx
and h2 (PyPI), an HTTP/2 client independent of curl and of swift-nio-http2.

Usage:
  http2_client.py series BASE CA|-
      Every frame of every series of every study under BASE (…/dicomweb), fetched once over
      HTTP/1.1 (one connection after another) and once over HTTP/2: all of them concurrently on ONE
      connection (httpx, max_connections=1). Each instance is also retrieved whole over HTTP/2
      (multipart/related; type="application/dicom") and read by pydicom, whose frames the
      HTTP/2 frames must equal. CA: the test CA for https, - for h2c (prior knowledge).
  http2_client.py limits HOST PORT WAIT
      h2c with prior knowledge: the server's SETTINGS (max concurrent streams) as h2 reads them; a
      stream whose announced body never comes must be reset by the body deadline, the connection
      still answering another stream; then, no stream open, the idle deadline must close the
      connection (GOAWAY). WAIT: seconds the socket waits for the server.
Prints a JSON report.
"""
import asyncio
import io
import json
import socket
import sys


def multipart_parts(content_type, body):
    """The bodies of a multipart/related response (RFC 2046 §5.1.1), each with its headers."""
    boundary = None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    if boundary is None:
        raise ValueError(f"no boundary in {content_type}")
    delimiter = b"--" + boundary.encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        parts.append((headers, content))
    return parts


FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
INSTANCE_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def value(item, tag):
    return ((item.get(tag) or {}).get("Value") or [None])[0]


def frame_urls(client, base):
    """(frame URL, SOP instance UID, frame number) of everything stored, and the instances' URLs."""
    frames, instances = [], []
    for study in client.get(f"{base}/studies").json():
        s = value(study, "0020000D")
        for series in client.get(f"{base}/studies/{s}/series").json():
            se = value(series, "0020000E")
            for instance in client.get(f"{base}/studies/{s}/series/{se}/instances").json():
                sop = value(instance, "00080018")
                url = f"{base}/studies/{s}/series/{se}/instances/{sop}"
                instances.append((url, sop))
                count = int(value(instance, "00280008") or 1)
                frames += [(f"{url}/frames/{n}", sop, n) for n in range(1, count + 1)]
    return frames, instances


def pydicom_frames(data):
    """The frames of a DICOM file as pydicom sees them: the encapsulated fragments of each frame,
    or the native pixel data cut into frames."""
    import pydicom
    from pydicom.encaps import generate_frames
    ds = pydicom.dcmread(io.BytesIO(data))
    count = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    size = len(ds.PixelData) // count
    return [ds.PixelData[k * size:(k + 1) * size] for k in range(count)]


async def over_http2(base, verify, frames, instances):
    import httpx
    # One connection: whatever the concurrency, httpx multiplexes every request on it.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(http1=verify is not None, http2=True, verify=verify if verify is not None else False,
                                 limits=limits, timeout=60) as client:
        async def get(url, accept):
            r = await client.get(url, headers={"Accept": accept})
            stream = r.extensions.get("network_stream")
            local = stream.get_extra_info("client_addr") if stream is not None else None
            return r, r.extensions.get("stream_id"), local
        framed = await asyncio.gather(*[get(url, FRAME_ACCEPT) for url, _, _ in frames])
        whole = await asyncio.gather(*[get(url, INSTANCE_ACCEPT) for url, _ in instances])
    return framed, whole


def series(base, ca):
    import httpx
    verify = None if ca == "-" else ca
    with httpx.Client(http1=True, http2=False, verify=verify if verify is not None else False, timeout=60) as h1:
        frames, instances = frame_urls(h1, base)
        by_http1 = {}
        for url, _, _ in frames:
            r = h1.get(url, headers={"Accept": FRAME_ACCEPT})
            assert r.http_version == "HTTP/1.1", r.http_version
            by_http1[url] = [c for _, c in multipart_parts(r.headers["content-type"], r.content)]
    framed, whole = asyncio.run(over_http2(base, verify, frames, instances))
    report = {"frames": len(frames), "instances": len(instances), "statuses": sorted({r.status_code for r, _, _ in framed + whole}),
              "versions": sorted({r.http_version for r, _, _ in framed + whole}),
              "connections": len({local for _, _, local in framed + whole}),
              "streams": len({sid for _, sid, _ in framed + whole}), "bytes": 0,
              "differ_from_http1": [], "differ_from_pydicom": []}
    part_types = set()
    stored = {}
    for (r, _, _), (_, sop) in zip(whole, instances):
        parts = multipart_parts(r.headers["content-type"], r.content)
        part_types |= {h.get("content-type", "").split(";")[0] for h, _ in parts}
        stored[sop] = pydicom_frames(parts[0][1])
    for (r, _, _), (url, sop, n) in zip(framed, frames):
        parts = multipart_parts(r.headers["content-type"], r.content)
        part_types |= {h.get("content-type", "").split(";")[0] for h, _ in parts}
        contents = [c for _, c in parts]
        report["bytes"] += sum(len(c) for c in contents)
        if contents != by_http1[url]:
            report["differ_from_http1"].append(url)
        if len(contents) != 1 or contents[0].rstrip(b"\0") != stored[sop][n - 1].rstrip(b"\0"):
            # The trailing pad byte of an odd-length fragment is the only difference allowed (PS3.5 §A.4).
            report["differ_from_pydicom"].append(url)
    report["part_types"] = sorted(part_types)
    print(json.dumps(report))


def frame_types(data):
    """The types of the whole HTTP/2 frames in data (RFC 9113 §4.1: 3 bytes length, 1 type, ...)."""
    types, at = [], 0
    while at + 9 <= len(data):
        types.append(data[at + 3])
        at += 9 + int.from_bytes(data[at:at + 3], "big")
    return types


def limits(host, port, wait):
    """h2c with prior knowledge on a raw socket: the server's SETTINGS; then a POST stream that
    announces a body and sends none, which the body deadline must reset (RST_STREAM) while the
    connection lives on: a GET /health on it afterwards is answered."""
    import time
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    connection = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    report = {}
    with socket.create_connection((host, int(port)), timeout=float(wait)) as s:
        def pump(until):
            while not until():
                data = s.recv(65536)
                if not data:
                    report["connection_closed"] = True
                    return
                if report.get("goaway"):
                    continue  # h2 takes nothing after GOAWAY (the server's closing PING): wait for the close
                try:
                    events = connection.receive_data(data)
                except h2.exceptions.ProtocolError:
                    # GOAWAY and a PING in one read: h2 refuses the PING; find the GOAWAY (type 7) itself.
                    report["goaway"] = 7 in frame_types(data)
                    continue
                for event in events:
                    if isinstance(event, h2.events.RemoteSettingsChanged):
                        report["max_concurrent_streams"] = connection.remote_settings.max_concurrent_streams
                    elif isinstance(event, h2.events.StreamReset):
                        report["reset_stream"] = event.stream_id
                        report["reset_after"] = round(time.monotonic() - started, 2)
                    elif isinstance(event, h2.events.ResponseReceived):
                        report.setdefault("responses", {})[event.stream_id] = dict(event.headers).get(b":status", b"").decode()
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        report["goaway"] = True
                    elif isinstance(event, h2.events.StreamEnded):
                        report.setdefault("ended", []).append(event.stream_id)
                s.sendall(connection.data_to_send())
        s.sendall(connection.data_to_send())
        started = time.monotonic()
        pump(lambda: "max_concurrent_streams" in report)
        stalled = connection.get_next_available_stream_id()
        connection.send_headers(stalled, [(":method", "POST"), (":scheme", "http"), (":authority", f"{host}:{port}"),
                                          (":path", "/dicomweb/studies"), ("content-type", "application/dicom"),
                                          ("content-length", "500")])
        s.sendall(connection.data_to_send())
        started = time.monotonic()
        pump(lambda: "reset_stream" in report or stalled in report.get("ended", []) or report.get("connection_closed"))
        if not report.get("connection_closed"):
            health = connection.get_next_available_stream_id()
            connection.send_headers(health, [(":method", "GET"), (":scheme", "http"), (":authority", f"{host}:{port}"),
                                             (":path", "/health")], end_stream=True)
            s.sendall(connection.data_to_send())
            pump(lambda: health in report.get("ended", []) or report.get("connection_closed"))
            report["health_status"] = report.get("responses", {}).get(health)
            # No stream open now: the connection's idle deadline (GOAWAY, then close).
            idle_since = time.monotonic()
            try:
                pump(lambda: report.get("connection_closed"))
                report["idle_closed_after"] = round(time.monotonic() - idle_since, 2)
                report.pop("connection_closed", None)
            except socket.timeout:
                pass
        report["stalled_stream"] = stalled
    print(json.dumps(report))


if __name__ == "__main__":
    mode, arguments = sys.argv[1], sys.argv[2:]
    {"series": series, "limits": limits}[mode](*arguments)
