"""Datasets: cards, catalog, fingerprints, checked reads, generators and loaders."""
