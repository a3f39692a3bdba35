"""The program registry and its commands."""
