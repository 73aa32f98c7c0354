#!/usr/bin/env python3
"""TLS checks of a running `tessera serve --tls-cert --tls-key` (Tests/DICOMwebTests/ServeTLSTests.swift).

Usage:
  dicomweb_tls.py client URL CA
      dicomweb-client over HTTPS, its requests session verifying against the test CA: search,
      metadata, a frame, an instance; and the same without the CA, which must fail verification.
  dicomweb_tls.py reload HOST PORT CA PID CERT KEY NEW_CERT NEW_KEY
      A keep-alive connection is opened; NEW_CERT/NEW_KEY are copied over the served CERT/KEY and
      the server (PID) gets SIGHUP; then the old connection is used again and new ones are opened.
      Then CERT is overwritten with garbage and SIGHUP sent again: new connections must still get
      the new certificate.
Prints a JSON report.
"""
import http.client
import json
import os
import shutil
import signal
import ssl
import sys
import time
import warnings

warnings.simplefilter("ignore")


def client(url, ca):
    import requests
    from dicomweb_client.api import DICOMwebClient

    report = {}
    session = requests.Session()
    session.verify = ca
    # Otherwise REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment win over session.verify
    # (requests merges the environment into each request), and a proxy variable would catch loopback.
    session.trust_env = False
    web = DICOMwebClient(url=url, session=session)
    studies = web.search_for_studies()
    report["studies"] = len(studies)
    report["retrieve_url"] = studies[0]["00081190"]["Value"][0]
    study = studies[0]["0020000D"]["Value"][0]
    instances = web.search_for_instances(study_instance_uid=study)
    first = instances[0]
    series, sop = first["0020000E"]["Value"][0], first["00080018"]["Value"][0]
    metadata = web.retrieve_instance_metadata(study, series, sop)
    report["metadata_sop"] = metadata["00080018"]["Value"][0]
    frames = web.retrieve_instance_frames(study, series, sop, frame_numbers=[1],
                                          media_types=(("application/octet-stream", "*"),))
    report["frame_bytes"] = len(frames[0])
    instance = web.retrieve_instance(study, series, sop)
    report["instance_sop"] = str(instance.SOPInstanceUID)
    try:
        requests.get(url + "/studies", timeout=10)  # the system's trust store: the test CA is not in it
        report["unverified_refused"] = False
    except requests.exceptions.SSLError:
        report["unverified_refused"] = True
    return report


def serial(connection):
    return connection.sock.getpeercert()["serialNumber"]


def reload(host, port, ca, pid, cert, key, new_cert, new_key):
    context = ssl.create_default_context(cafile=ca)
    report = {}

    def connect():
        c = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        c.request("GET", "/health")
        r = c.getresponse()
        r.read()
        return c, r.status

    old, status = connect()
    report["before"] = serial(old)
    report["before_status"] = status
    old_socket = old.sock.getsockname()
    shutil.copyfile(new_cert, cert)
    shutil.copyfile(new_key, key)
    os.kill(int(pid), signal.SIGHUP)
    deadline = time.time() + 10
    new = None
    while time.time() < deadline:
        c, _ = connect()
        if serial(c) != report["before"]:
            new = c
            break
        c.close()
        time.sleep(0.1)
    report["after"] = serial(new) if new else report["before"]
    # The connection opened before the reload still serves requests, on the same socket, with the
    # certificate it was opened with.
    old.request("GET", "/health")
    r = old.getresponse()
    r.read()
    report["old_connection_status"] = r.status
    report["old_connection_same_socket"] = old.sock is not None and old.sock.getsockname() == old_socket
    report["old_connection_serial"] = serial(old)
    # A certificate file that does not load: the server keeps serving the one it has.
    with open(cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    os.kill(int(pid), signal.SIGHUP)
    time.sleep(1)
    c, status = connect()
    report["after_bad_reload"] = serial(c)
    report["after_bad_reload_status"] = status
    return report


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    print(json.dumps(client(*args) if mode == "client" else reload(*args)))
