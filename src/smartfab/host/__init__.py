"""The machine under every service: what the hub, its services and their children share.

* :mod:`~smartfab.host.settings` the settings of one deployment (``HubSettings``), written by
  ``smartfab hub up`` into the state directory and read back by every process it starts;
* :mod:`~smartfab.host.state` the state directory: its paths, secrets, private files;
* :mod:`~smartfab.host.layout` the names and folders of users, team workspaces and dashboards
  accounts on this machine;
* :mod:`~smartfab.host.accounts` system accounts, groups, folders and links (idempotent
  ``ensure_*`` steps) and :mod:`~smartfab.host.provision` those of each person and team;
* :mod:`~smartfab.host.privileges` a child process becoming an unprivileged account;
* :mod:`~smartfab.host.names` names every layer shares (prefixes, environment variables);
* :mod:`~smartfab.host.forkserver` the one fork server: a warm process that forks programs
  with their imports done, for any use (:mod:`~smartfab.host.forkprotocol`: the uses and the
  messages; :mod:`~smartfab.host.forkprocess`: the server's own process).

The services (:mod:`smartfab.hub`, :mod:`smartfab.dashboards`) and :mod:`smartfab.runs` import
this package; it imports none of them (a fork server imports a use's modules by name).
"""

from __future__ import annotations
