"""``python -m toolkit.data.prepare.demo``: the demo corpus CLI (same as ``toolkit-prepare-demo``)."""

import sys

from toolkit.data.prepare.demo import main

sys.exit(main())
