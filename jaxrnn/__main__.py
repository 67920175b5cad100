"""``python -m jaxrnn ...``: the ``jaxrnn`` command without the console script."""

import sys

from jaxrnn.experiment.cli import main

sys.exit(main())
