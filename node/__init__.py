"""The FastAPI node services, their configuration, the CLI and the embedded Redis."""
