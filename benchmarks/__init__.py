"""Benchmarks of Flask-OAuthClient against a floor and two peers.

Run ``python -m benchmarks`` (or ``python -m benchmarks --quick``); see README.md.
"""
