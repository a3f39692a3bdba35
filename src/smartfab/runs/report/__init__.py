"""What people and tools read about batches: the report of one batch, the comparison of two.

One module per job (this package imports none of them):

- :mod:`~smartfab.runs.report.files`: :func:`write_report`, the three files of a batch report
  (``report.html``, ``runs.csv``, ``runs.json``);
- :mod:`~smartfab.runs.report.data`: the numbers the report shows (counts, columns, rows);
- :mod:`~smartfab.runs.report.html`: the self-contained page;
- :mod:`~smartfab.runs.report.plots`: the metric plots drawn into it;
- :mod:`~smartfab.runs.report.style`: its stylesheet;
- :mod:`~smartfab.runs.report.values`: how metric values read and compare (shared by all);
- :mod:`~smartfab.runs.report.compare`: what changed between two batches
  (:func:`compare_batches`), as JSON or as text for the terminal.

The package sits above :mod:`smartfab.runs.models` and below the rest of the runs; it imports
nothing of :mod:`smartfab.runs.kernels`.
"""
