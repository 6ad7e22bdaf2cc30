"""`python -m resnet_inspect` runs the command line."""

from .console import main

main()
