"""`python -m reference_server.models [DIR] [--if-missing]`: build the default model repository."""

import sys

from reference_server.models.build import main

sys.exit(main())
