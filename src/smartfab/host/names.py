"""The names the platform reserves on this machine and in the hub, defined once.

Hub users of team workspaces and of the accounts that run each team's dashboards have prefixes
that people's names may not take (the alliance file refuses them); a server's environment tells
the programs in it whose data they may use. The alliance file, the datasets catalog, the hub and
the services all read these from here.
"""

from __future__ import annotations

#: hub user names reserved for team workspaces start with this
WORKSPACE_PREFIX = "team-"
#: hub-style user names of the accounts that run each team's dashboards start with this
DASHBOARD_USER_PREFIX = "dash-"
#: hub-style user names of the accounts that run each team's test-bench batches start with this
RUN_USER_PREFIX = "run-"

#: the teams of the person a server or kernel works for, ``,``-separated
TEAMS_ENV = "SMARTFAB_TEAMS"
#: datasets granted to those teams beyond their own, ``,``-separated
GRANTS_ENV = "SMARTFAB_DATASET_GRANTS"
#: read-only folders of curated builds the server may use, ``:``-separated
SHARED_DATA_ENV = "SMARTFAB_SHARED_DATA"
#: the folders of those teams, as ``team=path`` pairs, ``:``-separated
TEAM_FOLDERS_ENV = "SMARTFAB_TEAM_FOLDERS"
