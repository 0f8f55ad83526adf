"""Serve the example app for the browser tests.

What ``python -m example_app --no-provider --port PORT`` does, plus the settings the
tests need that the example app has no switch for: a refresh leeway shorter than the
provider's few-second access tokens (the default, 30 s, would refresh on every page
view and hide whether expiry is what triggers the refresh).

Usage: ``python tests/e2e/run_example_app.py PORT`` with the example app's environment
(``DEV_PROVIDER_URL``, ``DEV_CLIENT_ID``, ``DEV_CLIENT_SECRET``, ``DATABASE_URL``,
``SECRET_KEY``) and ``E2E_REFRESH_LEEWAY`` (seconds).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    port = int(sys.argv[1])
    # example_app sits at the repository root; appended, so that an installed
    # flask_oauthclient (tox installs a wheel) still wins over the source tree.
    sys.path.append(str(Path(__file__).resolve().parents[2]))
    from example_app import create_app

    app = create_app(
        {"OAUTHCLIENT_REFRESH_LEEWAY": float(os.environ.get("E2E_REFRESH_LEEWAY", 1))}
    )
    print(f" * example app on http://127.0.0.1:{port}/", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    main()
