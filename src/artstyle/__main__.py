"""`python -m artstyle` runs the command line."""

from .cli import main

main()
