"""The alliance hub: settings, state directory, provisioning, spawner and process control."""

from __future__ import annotations
