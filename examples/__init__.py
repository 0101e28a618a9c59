"""Reference ffmpeg transcoding master and worker built on ffrtmp_infra."""
