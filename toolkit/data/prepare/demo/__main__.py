"""``python -m toolkit.data.prepare.demo``: the demo corpus CLI (same as ``toolkit-prepare-demo``).

Importing this module (as the fresh-venv check does for every module) runs nothing.
"""

import sys

from toolkit.data.prepare.demo import main

if __name__ == "__main__":
    sys.exit(main())
