"""The ``eventmodel`` command line: the one place that wires eventmodel and projections."""
