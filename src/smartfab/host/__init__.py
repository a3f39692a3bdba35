"""The machine under every service: what the hub, its services and their children share.

* :mod:`~smartfab.host.settings` the settings of one deployment (``HubSettings``), written by
  ``smartfab hub up`` into the state directory and read back by every process it starts;
* :mod:`~smartfab.host.state` the state directory: its paths, secrets, private files;
* :mod:`~smartfab.host.layout` the names and folders of users, team workspaces and dashboards
  accounts on this machine;
* :mod:`~smartfab.host.accounts` system accounts, groups, folders and links (idempotent
  ``ensure_*`` steps) and :mod:`~smartfab.host.provision` those of each person and team;
* :mod:`~smartfab.host.privileges` a child process becoming an unprivileged account;
* :mod:`~smartfab.host.forkserver` the fork server: warm processes that fork programs.

The services (:mod:`smartfab.hub`, :mod:`smartfab.dashboards`) import this package; it imports
none of them.
"""

from __future__ import annotations
