"""``python -m eventmodel`` is the ``eventmodel`` command."""

from eventmodel.cli.main import app

app(prog_name="eventmodel")
