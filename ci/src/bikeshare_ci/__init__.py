"""bikeshare's CI/CD as Dagger functions: checks, the serving image, and releases to SageMaker

The same functions run on a laptop and in GitHub Actions. `dagger call ci` runs every check
concurrently; `cd-staging` builds, publishes, uploads the model, deploys blue/green, smoke-tests
and rolls back on failure; `promote` copies what staging serves to production. Each release
function returns a directory with a Markdown report (`summary.md`) and its outcome.
"""

from .main import BikeshareCi as BikeshareCi
