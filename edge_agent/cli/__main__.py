"""``python -m edge_agent.cli`` = ``vigil``."""

from edge_agent.cli import main

main()
