"""`python -m tingxie.cli`, the same as the `tingxie` script."""

import sys

from tingxie.cli import main

sys.exit(main())
