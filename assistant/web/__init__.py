"""The web chat: ``app`` (the Gradio app), ``render`` (its HTML), ``uploads``, ``streaming``; CSS and JS in
``static/``."""
from .app import build_app, launch, serve

__all__ = ["build_app", "launch", "serve"]
