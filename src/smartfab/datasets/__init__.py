"""Curated machine datasets: cards, generators, loaders, checksums and team access."""

from __future__ import annotations
