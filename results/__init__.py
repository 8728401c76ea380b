"""Results: what a run's metrics and its listening tests say.

- :mod:`results.store` reads a run directory (tolerating gaps);
- :mod:`results.stats` shared statistics (t and hierarchical-bootstrap intervals, Holm,
  rank-biserial, correlation intervals);
- :mod:`results.aggregate` metrics per loss and category, paired differences;
- :mod:`results.claims` the seed's three claims, checked;
- :mod:`results.listening` MUSHRA readers, post-screening and tests (ITU-R BS.1534-3);
- :mod:`results.correlation` metrics against ears;
- :mod:`results.plots` figures; :mod:`results.report` the HTML / Markdown / LaTeX report;
- :mod:`results.cli` the ``report``, ``compare`` and ``listen analyze`` commands.
"""
