"""The stylesheet of the batch report, inlined into its ``<style>`` element.

Status colours follow :data:`smartfab.runs.report.plots.STATUS_COLOURS` (Okabe-Ito) so the table
and the plots read alike; text on coloured cells stays dark for contrast.
"""

from __future__ import annotations

CSS = """
:root {
  --fg: #1d1d1f; --muted: #666; --line: #dcdde0; --head: #f4f5f7; --param: #eef3fb;
  --ok: #009E73; --ok-bg: #dcf2ea; --ok-fg: #00573a;
  --bad: #D55E00; --bad-bg: #fbe2d3; --bad-fg: #8a2c00;
  --err: #CC79A7; --err-bg: #f7e1ee; --err-fg: #7a2a5f;
  --rule: #0072B2;
}
* { box-sizing: border-box; }
body {
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif;
  color: var(--fg); margin: 0 auto; padding: 1.2rem 2rem 3rem; max-width: 1500px;
}
code, pre, dd { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
h1 { font-size: 1.6rem; margin: .2rem 0; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; padding-bottom: .25rem;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
a { color: var(--rule); }
nav { font-size: .9em; margin: .3rem 0 1rem; }
nav a { margin-right: 1rem; }
.kicker { color: var(--muted); text-transform: uppercase; letter-spacing: .06em; font-size: .75em; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: .8rem 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-size: .88em; overflow-wrap: anywhere; }
.verdict { display: inline-block; padding: .35rem .8rem; border-radius: 4px; font-weight: 600; }
.verdict.ok { background: var(--ok-bg); color: var(--ok-fg); border-left: 4px solid var(--ok); }
.verdict.bad { background: var(--bad-bg); color: var(--bad-fg); border-left: 4px solid var(--bad); }
.cards { display: flex; flex-wrap: wrap; gap: .6rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .45rem .9rem;
        min-width: 7.5rem; }
.card b { display: block; font-size: 1.35rem; font-variant-numeric: tabular-nums; }
.card span { color: var(--muted); font-size: .85em; }
.card.passed { border-top: 3px solid var(--ok); }
.card.failed { border-top: 3px solid var(--bad); }
.card.error { border-top: 3px solid var(--err); }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: .25rem .55rem; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; white-space: nowrap; }
thead th { background: var(--head); position: sticky; top: 0; z-index: 1; }
th.param, td.param { background: var(--param); }
th .rule { display: block; font-weight: normal; color: var(--rule); font-size: .85em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { white-space: normal; min-width: 8rem; max-width: 28rem; overflow-wrap: anywhere; }
td.absent { color: #aaa; text-align: center; }
td.bad { background: var(--bad-bg); color: var(--bad-fg); font-weight: 600;
         box-shadow: inset 3px 0 0 var(--bad); }
td.held { background: var(--ok-bg); }
.scroll { overflow: auto; max-height: 80vh; border: 1px solid var(--line); border-radius: 4px; }
.scroll table { width: 100%; }
.st { display: inline-block; padding: 0 .45rem; border-radius: 3px; font-weight: 600;
      font-size: .9em; }
.st-passed { background: var(--ok-bg); color: var(--ok-fg); }
.st-failed { background: var(--bad-bg); color: var(--bad-fg); }
.st-error { background: var(--err-bg); color: var(--err-fg); }
.muted, .none { color: var(--muted); }
article.error { border: 1px solid var(--line); border-left: 4px solid var(--err);
                border-radius: 4px; padding: .4rem .9rem .6rem; margin: .7rem 0; }
article.error h3 { margin: .3rem 0; }
pre { background: var(--head); padding: .6rem .8rem; overflow: auto; font-size: 12px;
      max-height: 32rem; border-radius: 4px; margin: .4rem 0; white-space: pre; }
pre.evalue { white-space: pre-wrap; color: var(--err-fg); }
details > summary { cursor: pointer; }
.legend { display: flex; flex-wrap: wrap; gap: 1.2rem; font-size: .9em; margin: .3rem 0 .8rem; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 50%;
          vertical-align: -.05em; margin-right: .35em; }
.swatch.line { border-radius: 0; height: 2px; width: 1.4em; vertical-align: .25em; }
.swatch.dashed { border-radius: 0; height: 0; width: 1.4em; border-top: 2px dashed var(--rule);
                 vertical-align: .25em; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: .8rem; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: .8rem;
           padding: .6rem 0; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px;
             background: #fff; }
figcaption { font-size: .85em; color: var(--muted); }
details.run { border-bottom: 1px solid var(--line); padding: .35rem 0; }
@media print {
  .scroll { max-height: none; overflow: visible; border: 0; }
  thead th { position: static; }
  nav { display: none; }
}
"""
