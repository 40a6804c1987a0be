"""The HTTP API the mobile app talks to (FastAPI). It never imports torch or the pipeline."""
