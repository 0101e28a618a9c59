"""Real services for the test suite: redis-server, ffmpeg, an OTLP receiver, uvicorn."""
