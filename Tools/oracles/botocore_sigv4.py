#!/usr/bin/env python3
"""Oracle: botocore's S3 SigV4 header signing (S3SigV4Auth) of a fixed set of requests.

Prints one JSON list; each entry is a request (method, endpoint, raw key, raw query pairs, headers,
body as hex, whether the payload is unsigned), its credentials, region and fixed date, and what
botocore produced: the encoded path it puts on the wire and the Authorization header. The Swift test
signs the same requests with SigV4Signer and compares byte for byte.
"""
import datetime
import json
from urllib.parse import urlsplit

import botocore.auth
import botocore.config
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

FIXED = datetime.datetime(2026, 12, 1, 9, 5, 7)
botocore.auth.get_current_datetime = lambda *a, **k: FIXED

KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+session/token=="

CASES = [
    # name, method, endpoint, bucket-relative key (path-style), query, headers, body, unsigned, token
    ("put", "PUT", "http://127.0.0.1:9000", "tessera-test", "blobs/ab/cdef0123", [],
     [("Content-Type", "application/octet-stream")], b"\x00DICM" * 37, False, None),
    ("put-unsigned", "PUT", "https://s3.eu-west-1.amazonaws.com", "tessera-test", "blobs/ab/cdef0123", [],
     [("Content-Type", "application/octet-stream")], b"payload bytes", True, None),
    ("get-range", "GET", "http://127.0.0.1:9000", "tessera-test", "blobs/ab/cdef0123", [],
     [("Range", "bytes=128-4095")], b"", False, None),
    ("head", "HEAD", "http://localhost:4566", "tessera-test", "blobs/12/3456", [], [], b"", False, None),
    ("delete", "DELETE", "http://127.0.0.1:9000", "tessera-test", "blobs/ab/cdef0123", [], [], b"", False, None),
    ("key-needs-encoding", "GET", "http://127.0.0.1:9000", "tessera-test",
     "odd keys/a+b=c&d/ümlaut (1)/x~y_z.-*!'", [], [("Range", "bytes=0-0")], b"", False, None),
    ("list", "GET", "http://127.0.0.1:9000", "tessera-test", "",
     [("list-type", "2"), ("prefix", "blobs/a b+c/é"), ("max-keys", "100"),
      ("continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="), ("delimiter", "/")],
     [], b"", False, None),
    ("create-multipart", "POST", "http://127.0.0.1:9000", "tessera-test", "blobs/ab/cdef0123", [("uploads", "")],
     [("Content-Type", "application/octet-stream")], b"", False, None),
    ("upload-part", "PUT", "http://127.0.0.1:9000", "tessera-test", "blobs/ab/cdef0123",
     [("partNumber", "3"), ("uploadId", "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA/+=")],
     [], bytes(range(256)) * 64, False, None),
    ("complete-multipart", "POST", "http://127.0.0.1:9000", "tessera-test", "blobs/ab/cdef0123",
     [("uploadId", "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA/+=")],
     [("Content-Type", "application/xml")],
     b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part></CompleteMultipartUpload>",
     False, None),
    ("abort-multipart", "DELETE", "http://127.0.0.1:9000", "tessera-test", "blobs/ab/cdef0123",
     [("uploadId", "abc")], [], b"", False, None),
    ("session-token", "GET", "https://s3.us-east-2.amazonaws.com", "tessera-test", "blobs/ab/cdef0123", [],
     [("Range", "bytes=10-19"), ("X-Amz-Meta-Note", "  two   spaces  ")], b"", False, TOKEN),
    ("copy-refresh", "PUT", "http://127.0.0.1:9000", "tessera-test", "blobs/ab/cdef0123", [],
     [("x-amz-copy-source", "/tessera-test/blobs/ab/cdef0123"), ("x-amz-metadata-directive", "REPLACE")],
     b"", False, None),
]


def region_of(endpoint):
    host = urlsplit(endpoint).hostname
    parts = host.split(".")
    return parts[1] if len(parts) == 4 and parts[0] == "s3" else "us-east-1"


out = []
for name, method, endpoint, bucket, key, query, headers, body, unsigned, token in CASES:
    path = "/" + bucket + ("/" + percent_encode(key, safe="/~") if key else "")
    request = AWSRequest(method=method, url=endpoint + path, headers=dict(headers), data=body,
                         params=list(query) if query else {})
    if unsigned:
        request.context["client_config"] = botocore.config.Config(s3={"payload_signing_enabled": False})
    region = region_of(endpoint)
    botocore.auth.S3SigV4Auth(Credentials(KEY, SECRET, token), "s3", region).add_auth(request)
    out.append({
        "name": name, "method": method, "endpoint": endpoint, "bucket": bucket, "key": key,
        "query": [list(p) for p in query], "headers": [list(h) for h in headers], "body": body.hex(),
        "unsigned": unsigned, "accessKey": KEY, "secret": SECRET, "token": token, "region": region,
        "date": FIXED.replace(tzinfo=datetime.timezone.utc).timestamp(),
        "path": path, "host": botocore.auth._host_from_url(endpoint + path),
        "amzDate": request.headers["X-Amz-Date"],
        "contentSHA256": request.headers["X-Amz-Content-SHA256"],
        "authorization": request.headers["Authorization"],
    })
print(json.dumps(out, indent=1, ensure_ascii=False))
