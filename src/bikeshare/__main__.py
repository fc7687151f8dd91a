"""`python -m bikeshare` runs the same CLI as the `bikeshare` console script."""

from bikeshare.cli import main

raise SystemExit(main())
