"""The demo's run: a simulated cloud, its notifications through the normalizer onto the
log, full syncs over HTTP, a projection folding the log, checked against ground truth.

Like the CLI and ``eventmodel serve``, it wires both layers (sources and simulator on
the write side, the projection on the read side). ``eventmodel demo`` parses options,
runs :class:`eventmodel.demo.run.DemoRun` (it needs the ``sim`` extra) and prints its
:class:`eventmodel.demo.report.DemoReport`; :class:`eventmodel.demo.watch.DemoWatch`
is told the run's progress. This package imports nothing on its own, so that the
light modules load without the extra.
"""
