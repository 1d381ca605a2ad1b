"""`python -m edgepack.cli`: the same entry point as the `edgepack` command."""

from . import main

main()
