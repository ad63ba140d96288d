"""Sub-commands of the ``trunkline`` command line, one Typer app per module."""
