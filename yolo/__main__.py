"""`python -m yolo`: the detector's commands (see yolo/cli.py)."""

import sys

from yolo.cli import main

sys.exit(main())
