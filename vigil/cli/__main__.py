"""``python -m vigil.cli`` = ``vigil``."""

from vigil.cli import main

main()
