"""The entry point of rnnbench's submitit jobs (local processes and SLURM jobs).

submitit runs `PYTHON -u -m submitit.core._submit FOLDER`; rnnbench gives it, as PYTHON, this
interpreter on this file (executors._executor_python), which then:
- starts sys.path with the folder that holds this very rnnbench package, so a job imports the
  package the submitting process used, never a `rnnbench/` folder in its working directory
  (`python -m` would put the working directory first);
- refuses a job folder that anyone but the user can write, before submitit loads its pickles
  (loading a pickle runs code);
- then hands over to submitit.
Run as a script, never imported.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    folder = sys.argv[-1]

    import os

    from submitit.core import job_environment

    from rnnbench.executors import check_private

    os.environ["SUBMITIT_FOLDER"] = folder
    paths = job_environment.JobEnvironment().paths
    for path in (paths.folder.parent, paths.folder, paths.submitted_pickle):
        if path.exists():
            check_private(path)
    sys.argv = [sys.argv[0], folder]
    from submitit.core.submission import submitit_main

    submitit_main()
