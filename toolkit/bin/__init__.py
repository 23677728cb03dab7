"""Thin command-line entry points (argparse → config → library calls); ``main(argv)`` each.

Importing this package (which every ``python -m toolkit.bin.<x>`` does before torch is loaded)
makes OpenMP threads wait passively unless the user set ``OMP_WAIT_POLICY``: spinning threads
collapse CPU throughput 10–100× as soon as the cores are shared with data-loader workers or
another job (measured on 2 cores: a forward+backward took 0.95 s instead of 0.02 s).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
