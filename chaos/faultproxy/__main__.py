"""`python -m chaos.faultproxy --api 127.0.0.1:8474`: run the fault proxy until a signal."""

import sys

from chaos.faultproxy.cli import main

sys.exit(main())
