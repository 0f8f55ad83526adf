"""Browser tests against a real OpenID provider (see conftest.py).

This folder is a package so that its ``conftest`` module is ``e2e.conftest`` and
``from conftest import ...`` keeps meaning ``tests/conftest.py``.
"""
