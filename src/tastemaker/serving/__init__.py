"""The HTTP service: `create_app(settings)` builds the FastAPI app, `serve(settings)` runs it.

HTTP types (FastAPI, status codes) appear only in this package; `service.Service` is the core the
endpoints call, usable without HTTP.
"""

from tastemaker.serving.settings import ServeSettings


def create_app(*args, **kwargs):
    """See `tastemaker.serving.app.create_app` (imported lazily: FastAPI is only needed to serve)."""
    from tastemaker.serving.app import create_app as _create

    return _create(*args, **kwargs)


def serve(settings: ServeSettings) -> None:
    """See `tastemaker.serving.app.serve`."""
    from tastemaker.serving.app import serve as _serve

    _serve(settings)


__all__ = ["ServeSettings", "create_app", "serve"]
