"""Provider presets: what is known about a provider, as data.

Each preset lives in its own module, ``flask_oauthclient.providers.<name>``, and
defines ``PRESET``. ``oauth.register("google", client_id=..., client_secret=...)``
loads the preset of that name; any keyword given to ``register`` overrides it.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing as t
from dataclasses import dataclass
from dataclasses import field

from ..provider_config import preset_defaults
from ..provider_config import ProfileMapper as ProfileMapper
from ..provider_config import ProviderConfig


@dataclass(frozen=True)
class Preset(ProviderConfig):
    """Everything a preset knows about a provider: defaults for the ``register``
    keywords (the fields of :class:`~flask_oauthclient.provider_config.ProviderConfig`),
    and what the docs and ``flask oauth providers`` show.

    .. versionadded:: 0.1
    """

    #: The name the preset is registered under (``"google"``).
    name: str = ""
    # A preset's collections default to empty (the schema's to None).
    scope: t.Sequence[str] = ()
    authorize_params: t.Mapping[str, str] = field(default_factory=dict)
    headers: t.Mapping[str, str] = field(default_factory=dict)
    #: Where a developer registers the app and its callback URL.
    console_url: str | None = None
    #: Extra notes for the docs and ``flask oauth providers``.
    notes: str = ""

    def register_defaults(self) -> dict[str, t.Any]:
        """The ``register`` keywords this preset supplies."""
        return preset_defaults(self)


def get_preset(name: str) -> Preset | None:
    """Return the preset called ``name``, or ``None`` if there is none."""
    if not name.isidentifier() or name.startswith("_"):
        return None
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            return None
        raise
    return t.cast(Preset, module.PRESET)


def preset_names() -> list[str]:
    """The names of all presets shipped with the package."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    )
