"""Shared test helpers: a provider double (``fakes``), attack payloads
(``hardening``), live servers (``live_servers``) and the refresh-storm app
(``storm_app``)."""
