"""Dashboards: the Voila apps, the dashboards service and the gallery in a browser."""
