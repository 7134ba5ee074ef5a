"""``python -m llmsafety ...``: the command line, also as ``accelerate launch -m llmsafety dart run ...``."""

import sys

from llmsafety.cli import main

sys.exit(main())
