"""The HTTP API and pages (FastAPI): borrowers through their channel's signed gateway, operators
with accounts and roles, public invitation checks. ``create_app`` in ``microloan.api.app``."""
