"""tickrelay: a multiplayer game-state relay server.

Installed, the repository's folders live under this one name (``tickrelay.server``,
``tickrelay.client``, ``tickrelay.protocol``, ...; see ``package-dir`` in pyproject.toml),
so a game developer's own ``server.py`` or ``protocol/`` never shadows ours.
"""

__version__ = "0.1.0"
