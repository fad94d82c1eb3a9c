"""`python -m corvid ...` runs the corvid command, like the `corvid` console script."""

from ._cli import main

main()
