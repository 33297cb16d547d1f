"""``python -m edge_agent run --config FILE`` / ``check-config FILE`` (see :mod:`edge_agent.launcher`)."""

import sys

from edge_agent.launcher import main

sys.exit(main())
