"""The gallery page: the dashboards a person may open, as plain HTML."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from smartfab.dashboards.registry import Dashboard

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Dashboards - {alliance}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
header {{ display: flex; justify-content: space-between; align-items: baseline; }}
ul.sf-gallery {{ list-style: none; padding: 0; display: grid; gap: 1rem;
  grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); }}
li.sf-dashboard {{ border: 1px solid #ccc; border-radius: 6px; padding: 1rem; }}
li.sf-dashboard a {{ font-size: 1.1rem; font-weight: 600; }}
</style>
</head>
<body>
<header><h1>Dashboards</h1><span class="sf-user">{user} &middot;
<a href="{hub_home}">hub home</a></span></header>
<p>{alliance}: the apps granted to your teams.</p>
{content}
</body>
</html>
"""


def render_gallery(
    dashboards: Sequence[Dashboard], prefix: str, user: str, alliance: str, hub_home: str
) -> str:
    """HTML of the gallery; each app links to ``<prefix><id>/``."""
    if dashboards:
        items = "\n".join(
            f'<li class="sf-dashboard" data-dashboard-id="{escape(d.id)}">'
            f'<a href="{escape(prefix + d.id)}/">{escape(d.title)}</a>'
            f"<p>{escape(d.description)}</p></li>"
            for d in dashboards
        )
        content = f'<ul class="sf-gallery">\n{items}\n</ul>'
    else:
        content = '<p class="sf-empty">No dashboard is granted to your teams yet.</p>'
    return _PAGE.format(
        alliance=escape(alliance), user=escape(user), hub_home=escape(hub_home), content=content
    )
