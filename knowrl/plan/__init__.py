"""Planning: spec -> DAG of jobs with resources and cost; sweeps -> concrete specs."""

from knowrl.plan._cost import THROUGHPUT, Assumptions
from knowrl.plan._plan import Job, Plan, PlanError, Resources, plan
from knowrl.plan._sweep import SweepPoint, expand, point_changes

__all__ = [
    "THROUGHPUT",
    "Assumptions",
    "Job",
    "Plan",
    "PlanError",
    "Resources",
    "SweepPoint",
    "expand",
    "plan",
    "point_changes",
]
