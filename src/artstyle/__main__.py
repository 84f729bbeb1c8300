"""`python -m artstyle` runs the command line."""

from .apps.cli import main

main()
