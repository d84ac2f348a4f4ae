"""tickrelay: a multiplayer game-state relay server.

Installed, the repository's folders live under this one name (``tickrelay.server``,
``tickrelay.client``, ``tickrelay.protocol``, ...; see ``package-dir`` in pyproject.toml),
so a game developer's own ``server.py`` or ``protocol/`` never shadows ours. In the
repository this folder holds only this file; the parts are mapped into it at install.
"""

__version__ = "0.1.0"
