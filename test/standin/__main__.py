"""`uv run python test/standin [--port 5077]`: run the AWS stand-in until interrupted."""

import sys
from pathlib import Path

# Guarded: started by its path (`python test/standin/__main__.py`), this file is run again in
# each endpoint variant's process (multiprocessing's spawn.prepare, standin.runners.fork_serve).
if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from standin.server import main

    raise SystemExit(main())
