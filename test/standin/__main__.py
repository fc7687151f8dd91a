"""`uv run python test/standin [--port 5077]`: run the AWS stand-in until interrupted."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from standin.server import main

raise SystemExit(main())
