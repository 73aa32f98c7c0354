#!/usr/bin/env python3
"""A change-feed consumer as a user would write one (Docs/events.md, "Consuming the feed").

Polls GET /changefeed after its saved cursor, "processes" each event by appending it to a JSON-lines
log, and saves the cursor after each page. It may be killed at any moment (SIGKILL included) and
restarted: the cursor file is replaced atomically, and events the log already holds (processed
before a crash, the cursor not yet saved) are skipped by sequence, so each change is processed once.

    changefeed_consumer.py --url http://127.0.0.1:8080 --state DIR [--key API_KEY] [--until SEQ]

Only the standard library. Exits 0 once its cursor reaches --until (when given).
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def read_cursor(state):
    try:
        with open(os.path.join(state, "cursor")) as f:
            return int(f.read().strip() or 0)
    except FileNotFoundError:
        return 0


def save_cursor(state, cursor):
    tmp = os.path.join(state, "cursor.tmp")
    with open(tmp, "w") as f:
        f.write(str(cursor))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(state, "cursor"))


def processed(log_path):
    """The highest sequence the log holds; a torn last line (killed mid-write) is cut off."""
    last = 0
    if not os.path.exists(log_path):
        return 0
    good = 0
    with open(log_path, "rb") as f:
        data = f.read()
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is incomplete
        try:
            last = json.loads(line)["sequence"]
            good += len(line) + 1
        except (ValueError, KeyError):
            break
    if good != len(data):
        with open(log_path, "r+b") as f:
            f.truncate(good)
    return last


def fetch(url, key, after, limit):
    request = urllib.request.Request(f"{url}/changefeed?after={after}&limit={limit}")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--state", required=True, help="folder for the cursor and events.jsonl")
    p.add_argument("--key")
    p.add_argument("--until", type=int)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--interval", type=float, default=0.05, help="seconds to wait after an empty page")
    args = p.parse_args()
    os.makedirs(args.state, exist_ok=True)
    log_path = os.path.join(args.state, "events.jsonl")
    cursor = read_cursor(args.state)
    done = processed(log_path)
    with open(log_path, "ab") as log:
        while args.until is None or cursor < args.until:
            try:
                events = fetch(args.url, args.key, cursor, args.limit)
            except urllib.error.HTTPError as e:
                if e.code == 410:  # retention removed what we missed: say so, never skip silently
                    print(f"changefeed_consumer: {e.read().decode()}", file=sys.stderr)
                    return 3
                raise
            except (urllib.error.URLError, ConnectionError):
                time.sleep(args.interval)
                continue
            if not events:
                time.sleep(args.interval)
                continue
            for event in events:
                if event["sequence"] <= done:
                    continue  # processed before a crash that came before the cursor was saved
                log.write(json.dumps(event, sort_keys=True).encode() + b"\n")
                log.flush()
                os.fsync(log.fileno())
                done = event["sequence"]
            cursor = events[-1]["sequence"]
            save_cursor(args.state, cursor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
