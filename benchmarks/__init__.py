"""Benchmarks for alos: the cost of dispatch(), its audit record and a scripted agent step.

Run with ``make bench`` (or ``python -m benchmarks [--quick]``). The suite reports; it never
gates: it exits 0 whether or not a target is met.
"""
