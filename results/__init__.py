"""Results: what a run's metrics and its listening tests say.

- :mod:`earshot.results.rundir` the run directory's layout: every path and file name in it, its
  atomic writers and 16-bit PCM (``benchmark`` and ``listening_app`` write runs through it);
- :mod:`earshot.results.store` reads a run directory (tolerating gaps);
- :mod:`earshot.results.stats` shared statistics (t and hierarchical-bootstrap intervals, Holm,
  rank-biserial, correlation intervals);
- :mod:`earshot.results.aggregate` metrics per loss and category, paired differences;
- :mod:`earshot.results.claims` the seed's three claims, checked;
- :mod:`earshot.results.listening` MUSHRA readers, post-screening and tests (ITU-R BS.1534-3);
- :mod:`earshot.results.correlation` metrics against ears;
- :mod:`earshot.results.terminal` the one command-line renderer of present's tables (Rich, plain lines in a
  pipe, or one JSON document with ``--json``);
- :mod:`earshot.results.present` how every result is shown: tables of display strings, one
  formatting rule per quantity, for the report, the CLI and the listening app's admin page;
- :mod:`earshot.results.plots` figures; :mod:`earshot.results.report` the HTML / Markdown / LaTeX report.

``results`` reads runs and ratings tables (the columns of ``earshot listen export``,
:data:`earshot.results.listening.RATINGS_TABLE_COLUMNS`); it never imports the harness or the
listening app, whose CLI (``earshot.benchmark.cli``) hands it what they hold.
"""
