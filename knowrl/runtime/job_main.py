"""`python -m knowrl.runtime.job_main RUN_DIR JOB_ID`: one knowrl job as a Ray Jobs API entrypoint.

The job reads the spec and plan from the run directory's manifest, writes its
own status and artifacts there, and exits non-zero on failure so Ray marks the
submission failed as well.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    from knowrl._errors import KnowrlError
    from knowrl._rundir import now, read_json, write_status
    from knowrl.plan._plan import Plan
    from knowrl.runtime._jobs import execute
    from knowrl.runtime._retry import CANCELLED, mark_cancelled

    run, job_id = Path(argv[0]), argv[1]
    manifest = read_json(run / "manifest.json")
    job = Plan.from_dict(manifest["plan"]).job(job_id)
    write_status(run, job, "running", started_at=now(), error=None, retryable=None)
    if (run / CANCELLED).exists():  # `knowrl cancel` wrote its "cancelled" before this job's "running" landed
        mark_cancelled(run, job)
        return 1
    try:
        summary = execute(dataclasses.asdict(job), manifest["spec"], str(run))
    except Exception as e:
        if (run / CANCELLED).exists():  # stopped by the cancel: what it raised on the way out is not a failure
            mark_cancelled(run, job)
            return 1
        write_status(
            run,
            job,
            "failed",
            finished_at=now(),
            error=f"{type(e).__name__}: {e}"[:2000],
            retryable=not isinstance(e, KnowrlError),  # bad input fails the same way every time
        )
        traceback.print_exc()
        return 1
    write_status(run, job, "succeeded", finished_at=now(), summary=summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
