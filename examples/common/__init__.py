"""Code shared by the reference master, worker and CLI: scenarios, job specs, ffmpeg."""
