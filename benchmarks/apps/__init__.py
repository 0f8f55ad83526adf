"""The benchmarked apps: each a WSGI ``app`` served by gunicorn, configured by
environment variables (see :mod:`benchmarks.apps._bench`).

Every app does the same work per protected request: load the logged-in user (a
session cookie and one user query), load that user's token from its database, call
the provider's userinfo endpoint, and answer its JSON.
"""
