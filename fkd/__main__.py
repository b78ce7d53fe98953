"""``python -m fkd``: the command line (``fkd.cli``)."""
import sys

from fkd.cli import main

sys.exit(main())
