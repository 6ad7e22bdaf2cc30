"""`python -m resnet_inspect` runs the command line."""

from .cli import main

main()
