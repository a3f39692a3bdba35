"""Dropping root: a new process becomes an unprivileged account before it runs its program.

Used in the child, between ``fork()`` and the program: by the fork server's children (the
hub's single-user servers), by servers started as new processes (the spawner's
``preexec_fn``) and by the Voila processes of the ``dashboards`` service.
"""

from __future__ import annotations

import os


def become(uid: int, gid: int, groups: list[int], umask: int, cwd: str) -> None:
    """Become the account ``uid`` with primary group ``gid`` and exactly the supplementary
    ``groups``; set ``umask`` and the working directory ``cwd``.

    Like JupyterHub's ``set_user_setuid``, but a failure to set the supplementary groups is an
    error (OSError), never a process that runs with the groups of root. A process that already
    is ``uid`` (single-account mode) keeps its credentials.
    """
    if os.getuid() != uid:
        os.setgid(gid)
        os.setgroups(groups)
        os.setuid(uid)
    os.umask(umask)
    os.chdir(cwd)
