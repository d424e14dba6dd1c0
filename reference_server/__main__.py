"""`python -m reference_server`: see reference_server.cli for the options and exit codes."""

import sys

from reference_server.cli import main

if __name__ == "__main__":
    sys.exit(main())
