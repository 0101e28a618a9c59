"""Finding a real ffmpeg and making small test clips with it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_DURATION = re.compile(rb"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


def find_ffmpeg() -> str | None:
    """FFMPEG_BINARY, then ``ffmpeg`` on PATH, then imageio-ffmpeg's bundled binary."""
    explicit = os.environ.get("FFMPEG_BINARY")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        return None


class FFmpeg:
    """A located ffmpeg binary plus the two things tests need from it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.path, "-hide_banner", "-nostdin", *args],
            capture_output=True,
            timeout=timeout,
            check=True,
        )

    def make_clip(
        self,
        path: str | os.PathLike[str],
        seconds: float = 1.0,
        size: str = "320x240",
        rate: int = 25,
        audio: bool = True,
    ) -> Path:
        """Write an H.264/AAC MP4 of ``testsrc2`` (and a sine tone) lasting ``seconds``."""
        out = Path(path)
        args = ["-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
        if audio:
            tone = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
            args += ["-f", "lavfi", "-i", tone]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        if audio:
            args += ["-c:a", "aac", "-shortest"]
        self.run(*args, str(out))
        return out

    def duration(self, path: str | os.PathLike[str]) -> float:
        """The container duration of ``path`` in seconds, as ffmpeg reports it."""
        probe = subprocess.run(
            [self.path, "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            timeout=30,
            check=False,  # ffmpeg -i with no output always exits 1
        )
        match = _DURATION.search(probe.stderr)
        if match is None:
            raise ValueError(f"ffmpeg reports no duration for {path}: {probe.stderr[-300:]!r}")
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
