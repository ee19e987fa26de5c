"""``python -m probed`` runs the command line."""

from probed.cli import main

main()
