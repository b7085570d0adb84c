"""`python -m vocoder.cli`, the same as the `vocoder` console script."""

from vocoder.cli import main

main()
