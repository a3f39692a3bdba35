"""Helpers shared by the tests of every area and by the benchmarks: hubs, browsers, Voila."""
