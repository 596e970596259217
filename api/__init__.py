"""FastAPI REST and dashboard for evolution campaigns (see DESIGN.md; built by a later issue)."""
