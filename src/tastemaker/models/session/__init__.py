"""Incremental session-based models for news: the objects a service holds and updates on every click.

See `base` for the contract (`SessionModel`: update / update_many / recommend / save / load) and
`_kernels` for how the state is laid out and compiled.
"""

from tastemaker.models.session.base import (
    CONTEXT_FIELDS,
    ContextIndex,
    GrowableIndex,
    SessionModel,
    create_session_model,
)
from tastemaker.models.session.cooccurrence import CoOccurrence, ItemKNN, SequentialRules
from tastemaker.models.session.explore import (
    ArrayChoiceLog,
    BetaThompsonSampler,
    CallbackChoiceLog,
    ChoiceLog,
    FreshExplorer,
)
from tastemaker.models.session.hybrid import NewsHybrid
from tastemaker.models.session.knn import STAN, VSKNN, VSTAN
from tastemaker.models.session.popularity import ArticleRecency, ContextPopularity, RecentPopularity, WindowPopularity

SESSION_MODELS: dict[str, type[SessionModel]] = dict(SessionModel._registry)
"""Registered session models by name."""

__all__ = [
    "CONTEXT_FIELDS",
    "SESSION_MODELS",
    "STAN",
    "VSKNN",
    "VSTAN",
    "ArrayChoiceLog",
    "ArticleRecency",
    "BetaThompsonSampler",
    "CallbackChoiceLog",
    "ChoiceLog",
    "CoOccurrence",
    "ContextIndex",
    "ContextPopularity",
    "FreshExplorer",
    "GrowableIndex",
    "ItemKNN",
    "NewsHybrid",
    "RecentPopularity",
    "SequentialRules",
    "SessionModel",
    "WindowPopularity",
    "create_session_model",
]
