"""Programs under test: parameterized notebooks with their batch specs, owned by a team.

* :mod:`~smartfab.programs.models` what is recorded of a program and of each version;
* :mod:`~smartfab.programs.registry` the registry: immutable versions, by content;
* :mod:`~smartfab.programs.library` the programs of the alliance library;
* :mod:`~smartfab.programs.commands` ``smartfab programs register | list | show``.

Grants in the alliance file (``teams[].grants.programs``) name program ids: a curated program
of the library or a registered one.
"""

from __future__ import annotations
