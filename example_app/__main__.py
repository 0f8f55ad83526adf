"""``python -m example_app``: the development provider on :5001, the site on :5000."""

from __future__ import annotations

import argparse
import contextlib
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--provider-port", type=int, default=5001)
    parser.add_argument(
        "--no-provider",
        action="store_true",
        help="do not start the development provider (DEV_PROVIDER_URL is used)",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if not args.no_provider:
            from flask_oauthclient.testing import DevProvider

            provider = DevProvider()
            base = stack.enter_context(
                provider.serve(host="127.0.0.1", port=args.provider_port)
            )
            os.environ["DEV_PROVIDER_URL"] = base
            print(f" * Development provider on {base} (any user name logs in)")
        from . import create_app

        app = create_app()
        print(f" * Open http://127.0.0.1:{args.port}/ in your browser")
        app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
