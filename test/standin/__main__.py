"""`uv run python test/standin [--port 5077]`: run the AWS stand-in until interrupted."""

import sys
from pathlib import Path

# Guarded: the fork server that starts variants (standin.runners) may import this file again in
# each variant's process, as multiprocessing does with a __main__ given by its path.
if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from standin.server import main

    raise SystemExit(main())
