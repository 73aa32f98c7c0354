#!/usr/bin/env python3
"""Parses a Prometheus text exposition (stdin) with prometheus_client's strict parser and prints
its samples as JSON: [[name, {labels}, value], ...]. Exits non-zero on any syntax error, so a test
that pipes /metrics through it checks the format against the reference implementation."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
samples = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
json.dump(samples, sys.stdout)
