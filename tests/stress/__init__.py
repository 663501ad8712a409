"""Stress tests: model-based interleavings, fuzzers and schemathesis (marked `stress`).

A package of its own so its module names never clash with the tests one folder up.
"""
