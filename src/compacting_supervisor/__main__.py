"""``python -m compacting_supervisor``: the ``compacting-supervisor`` command line."""

import sys

from compacting_supervisor.cli import main

if __name__ == "__main__":
    sys.exit(main())
