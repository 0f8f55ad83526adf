"""A hanging test fails instead of stalling the run: pytest-timeout, with the
default ``timeout`` of ``[tool.pytest.ini_options]`` in pyproject.toml."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

HANGING = """
import time

import pytest


def test_spins():
    while True:
        pass


def test_sleeps():
    time.sleep(3600)


@pytest.fixture
def stuck():
    while True:
        pass


def test_setup_hangs(stuck):
    pass


def test_quick():
    pass


@pytest.mark.timeout(30)
def test_a_marker_gives_more_time():
    time.sleep(0.6)
"""


def test_a_hanging_test_fails_with_a_timeout(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only pytest-timeout: the run starts fast and sees no other plugin.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\ntimeout = 0.3\n")
    pytester.makepyfile(test_hangs=HANGING)
    result = pytester.runpytest_subprocess(
        "-p", "timeout", "-p", "no:cacheprovider", timeout=60
    )
    # A fixture that hangs is an error of its test: the timeout covers the setup.
    result.assert_outcomes(passed=2, failed=2, errors=1)
    output = str(result.stdout)
    for name in ("test_spins", "test_sleeps"):
        assert f"FAILED test_hangs.py::{name} - Failed: Timeout" in output
    assert "ERROR test_hangs.py::test_setup_hangs - Failed: Timeout" in output
    assert "Timeout (>0.3s) from pytest-timeout" in output


def test_this_suite_has_a_default_timeout(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    timeout = float(pytestconfig.getini("timeout") or 0)
    # Generous for the slowest test (under 10 s here, ~20 s on a slow machine),
    # yet a hang ends the run in minutes, not hours.
    assert 60 <= timeout <= 600
