"""``python -m toolkit.data.prepare.demo``: the demo corpus CLI (same as ``toolkit-prepare-demo``)."""

import sys

from toolkit.data.prepare.demo import main

if __name__ == "__main__":  # importing this module (e.g. to check every module imports) runs nothing
    sys.exit(main())
