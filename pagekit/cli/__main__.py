"""``python -m pagekit.cli``: the same as the ``pagekit`` command."""

from . import main

main(prog_name="pagekit")
