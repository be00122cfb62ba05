"""The dashboard: what the service recommends and why, its models, experiments and live state, in
the browser at ``/dashboard`` (served by ``tastemaker serve``; no front-end build, no CDN).

Pages:

- **Users** (``/dashboard/users``): find a user (ids suggested as you type), their history, and
  the recommendations of every loaded model side by side — each item with the model's reason and
  the business rules' trace — while changing k, the diversity knob (MMR λ) and the rule set.
- **Items** (``/dashboard/items``): an item's attributes, who consumed it, the items most often
  consumed with it, and what ``/items/{id}/similar`` answers.
- **Models** (``/dashboard/models``): the loaded models, the bench leaderboards (bench JSON files
  of `DashboardSettings.bench_dir`, as tables and bar charts) and the registry's versions and aliases.
- **Experiments** (``/dashboard/experiments``): per A/B experiment of `DashboardSettings.experiments_dir`,
  the variants, metrics with CIs, guardrails, the decision and the segments that drive it, and the
  full HTML report.
- **Live** (``/dashboard/live``): events per second, latency percentiles, errors, store health,
  refreshed every `DashboardSettings.refresh_s` seconds.

JSON endpoints for the same data live under ``/dashboard/api/…`` (listed in the OpenAPI schema
under the tag "dashboard"). `create_app` mounts the router when ``settings.dashboard.enabled``;
the extra models shown side by side come from ``ServeSettings.models``. The pages need jinja2
(``pip install 'tastemaker[dashboard]'``).
"""

from tastemaker.serving.dashboard.routes import dashboard_router
from tastemaker.serving.dashboard.state import DashboardState

__all__ = ["DashboardState", "dashboard_router"]
