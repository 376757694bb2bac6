"""The connectors this installation offers, by platform name (`x`, `meta`, `email`, …).

Listed in settings.SOTONG_CONNECTORS as dotted paths of Connector subclasses, so a city can
add a platform without touching anything else.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from sotong.channels.connectors.base import Connector
from sotong.errors import NotFound


@cache
def connectors() -> dict[str, Connector]:
    found: dict[str, Connector] = {}
    for path in getattr(settings, "SOTONG_CONNECTORS", ()):
        cls = import_string(path)
        if not (isinstance(cls, type) and issubclass(cls, Connector)) or not cls.platform:
            raise TypeError(f"{path} is not a Connector subclass with a platform name")
        if cls.platform in found:
            raise ValueError(f"two connectors for platform {cls.platform!r}")
        found[cls.platform] = cls()
    return found


def connector_for(platform: str) -> Connector:
    """The connector of a platform; NotFound for a platform this installation lacks."""
    connector = connectors().get(platform)
    if connector is None:
        raise NotFound(f"no connector for platform '{platform}'")
    return connector


def connector_for_channel(code: str) -> Connector | None:
    """The connector whose accounts live on the directory channel `code` (None: no
    connector, e.g. the web form or the call center)."""
    for connector in connectors().values():
        if code in connector.channel_codes():
            return connector
    return None
