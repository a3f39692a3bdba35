"""Program test runs: parameterized notebooks executed over grids, with provenance, acceptance
rules, a store, reports, comparison and verification."""
