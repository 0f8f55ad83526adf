"""The extension's blueprints: per provider ``/login/<name>``, its callback,
``/login/<name>/link`` and ``/login/<name>/unlink``; and the site's logout view.
The views are thin: the work is in :mod:`.login`, :mod:`.linking` and
:class:`~flask_oauthclient.OAuth`."""

from __future__ import annotations

import typing as t
from urllib.parse import urljoin

from flask import Blueprint
from flask import redirect
from flask import request
from flask.typing import ResponseReturnValue

from .errors import UserRequired
from .state import get_state

if t.TYPE_CHECKING:
    from .provider import Provider

# The views import their work (login, flow, csrf, linking) when they run: an app's
# blueprints are registered by init_app in every worker, but only the workers that
# handle a login, a link or a logout need those modules.

#: ``logout(end_session=..., post_logout_redirect_uri=...)``: :meth:`OAuth.logout`.
LogoutFunction = t.Callable[..., "str | None"]


def make_blueprint(provider: Provider, url_prefix: str) -> Blueprint:
    """The blueprint of one provider, named after it."""
    bp = Blueprint(
        provider.name,
        __name__,
        url_prefix=f"{url_prefix}/{provider.name}",
        template_folder="templates",
    )

    def start() -> ResponseReturnValue:
        from . import login

        return login.start(get_state(), provider)

    def authorized() -> ResponseReturnValue:
        from . import login

        return login.complete(get_state(), provider)

    def link() -> ResponseReturnValue:
        """Link this provider to the logged-in user."""
        from . import login
        from .csrf import check_csrf
        from .linking import current_user_id

        check_csrf()
        user_id = current_user_id()
        if user_id is None:
            raise UserRequired("Linking an account needs a logged-in user.")
        return login.start(get_state(), provider, link_user=user_id)

    def unlink() -> ResponseReturnValue:
        """Unlink this provider from the logged-in user, unless it is their last
        way to log in."""
        from . import flow
        from .csrf import check_csrf
        from .linking import current_user_id

        check_csrf()
        if current_user_id() is None:
            raise UserRequired("Unlinking an account needs a logged-in user.")
        provider.unlink()
        default = get_state().settings.login_redirect
        return redirect(flow.safe_next(request.form.get("next"), default))

    bp.add_url_rule("", "login", start, methods=["GET", "POST"])
    # A form_post provider answers by POST (login.complete refuses a GET then).
    callback_methods = ["GET", "POST"]
    if provider.config.get("response_mode") != "form_post":
        callback_methods = ["GET"]
    bp.add_url_rule("/authorized", "authorized", authorized, methods=callback_methods)
    bp.add_url_rule("/link", "link", link, methods=["POST"])
    bp.add_url_rule("/unlink", "unlink", unlink, methods=["POST"])
    return bp


def make_site_blueprint(logout_url: str | None, logout: LogoutFunction) -> Blueprint:
    """The blueprint of what is not one provider's: the logout view."""
    bp = Blueprint("oauthclient", __name__, template_folder="templates")

    def logout_view() -> ResponseReturnValue:
        from . import flow
        from .csrf import check_csrf

        check_csrf()
        next_url = flow.safe_next(
            request.form.get("next"), get_state().settings.logout_redirect
        )
        target = logout(
            end_session=request.form.get("end_session"),
            post_logout_redirect_uri=urljoin(request.host_url, next_url),
        )
        return redirect(target or next_url)

    if logout_url:
        bp.add_url_rule(logout_url, "logout", logout_view, methods=["POST"])
    return bp
