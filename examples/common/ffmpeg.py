"""Everything the examples do with the ffmpeg binary.

* :func:`find_ffmpeg`: ``FFMPEG_BINARY``, then ``ffmpeg`` on ``PATH``, then the binary bundled
  with ``imageio-ffmpeg`` (so the examples work after a plain ``pip install``).
* :func:`usable_encoders`: the encoders from ``ffmpeg -encoders``, hardware ones only when a
  tiny test encode succeeds (a build can list ``h264_nvenc`` on a machine with no GPU).
* :func:`build_command`: a scenario plus a validated job spec -> an argument list. Nothing is
  ever passed through a shell and no free-form argument reaches ffmpeg: every value is
  re-checked here (the worker's second line of defence after the master's validator).
* :class:`ProgressParser`: turns ``-progress`` blocks into :class:`Progress` snapshots.
* :func:`probe`: duration and streams of a file or URL, read back from ``ffmpeg -i``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from examples.common.netpolicy import IPAddress, pinned_http_url
from examples.common.scenarios import PRESETS, Scenario
from examples.common.spec import SpecError

__all__ = [
    "HARDWARE_ENCODER_SUFFIXES",
    "EncodeSettings",
    "FFmpegCommand",
    "FFmpegNotFoundError",
    "MediaInfo",
    "Progress",
    "ProgressParser",
    "bitrate_bps",
    "build_command",
    "collect_outputs",
    "encoder_works",
    "find_ffmpeg",
    "hls_duration",
    "input_source",
    "list_encoders",
    "output_duration",
    "parse_duration",
    "probe",
    "resolve_settings",
    "rtmp_receiver_command",
    "usable_encoders",
]

#: Encoders that need hardware: listed by a build whether or not the hardware exists.
HARDWARE_ENCODER_SUFFIXES = (
    "_nvenc",
    "_qsv",
    "_vaapi",
    "_amf",
    "_videotoolbox",
    "_v4l2m2m",
    "_vulkan",
    "_mf",
    "_omx",
)

#: Demuxers a file or URL input may use. Playlist-style demuxers (hls, concat, ...) are left
#: out on purpose: they open further files or URLs named inside the input.
INPUT_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,flv,mpegts,avi,wav,mp3,aac,h264,hevc,ogg"
#: Protocols a file input may use; a URL input adds the network ones.
FILE_PROTOCOLS = "file"
URL_PROTOCOLS = "http,https,tcp,tls"
#: Network inputs: analyse one second of stream, not ffmpeg's default five, before starting.
URL_PROBE_ARGS = ("-analyzeduration", "1000000", "-probesize", "2000000")
#: Network inputs follow no redirect and never reconnect: the host was checked against the
#: SSRF policy (examples.common.netpolicy) and a redirect or a new connection could lead
#: anywhere.
URL_NO_REDIRECT_ARGS = ("-max_redirects", "0", "-reconnect", "0")

_JOB_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_RESOLUTION = re.compile(r"([1-9][0-9]{0,4})x([1-9][0-9]{0,4})")
_BITRATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([kKmM]?)")
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_ENCODER_LINE = re.compile(r"^ ([VAS.][F.][S.][X.][B.][D.]) (\S+)")

# Presets in libx264's vocabulary mapped onto the other encoders' own scales.
_SVT_AV1_PRESETS = dict(zip(PRESETS, ("12", "11", "10", "9", "8", "6", "4", "2", "1"), strict=True))
_NVENC_PRESETS = dict(
    zip(PRESETS, ("p1", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p7"), strict=True)
)


class FFmpegNotFoundError(RuntimeError):
    """No usable ffmpeg binary was found."""


def find_ffmpeg(env: Mapping[str, str] | None = None) -> str:
    """Return the path of the ffmpeg to use.

    Order: the ``FFMPEG_BINARY`` environment variable (must name an executable file), then
    ``ffmpeg`` on ``PATH``, then ``imageio_ffmpeg.get_ffmpeg_exe()``. Raises
    :class:`FFmpegNotFoundError` saying what was tried.
    """
    environ = os.environ if env is None else env
    explicit = environ.get("FFMPEG_BINARY")
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise FFmpegNotFoundError(f"FFMPEG_BINARY={explicit!r} is not an executable file")
    on_path = shutil.which("ffmpeg", path=environ.get("PATH"))
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise FFmpegNotFoundError(
            "no ffmpeg: set FFMPEG_BINARY, put ffmpeg on PATH or "
            f"pip install imageio-ffmpeg ({exc})"
        ) from exc


def list_encoders(ffmpeg: str, *, timeout: float = 30.0) -> frozenset[str]:
    """Every encoder name ``ffmpeg -encoders`` lists (video, audio and subtitle)."""
    done = subprocess.run(  # noqa: S603 (argv list, no shell)
        [ffmpeg, "-hide_banner", "-nostdin", "-encoders"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    names = set()
    for line in done.stdout.splitlines():
        match = _ENCODER_LINE.match(line)
        if match and match.group(2) != "=":
            names.add(match.group(2))
    return frozenset(names)


def encoder_works(ffmpeg: str, encoder: str, *, timeout: float = 15.0) -> bool:
    """True when a two-frame test encode with ``encoder`` succeeds on this machine."""
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=256x144:rate=10",
        "-frames:v",
        "2",
        "-c:v",
        encoder,
        "-f",
        "null",
        "-",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)  # noqa: S603 (argv list, no shell)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def usable_encoders(ffmpeg: str, *, check_hardware: bool = True) -> frozenset[str]:
    """The encoders this node can really use.

    Software encoders are taken from :func:`list_encoders`; hardware ones (names ending in
    :data:`HARDWARE_ENCODER_SUFFIXES`) only if :func:`encoder_works` (skipped entirely when
    ``check_hardware`` is false). Only video hardware encoders of common codecs are tested, so
    detection stays quick on a machine without a GPU.
    """
    listed = list_encoders(ffmpeg)
    usable = {name for name in listed if not name.endswith(HARDWARE_ENCODER_SUFFIXES)}
    if check_hardware:
        candidates = sorted(
            name
            for name in listed
            if name.endswith(HARDWARE_ENCODER_SUFFIXES)
            and name.split("_", 1)[0] in ("h264", "hevc", "av1")
        )
        usable.update(name for name in candidates if encoder_works(ffmpeg, name))
    return frozenset(usable)


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns about a media file or URL."""

    duration_s: float | None
    has_video: bool
    has_audio: bool


def probe(
    ffmpeg: str, source: str, *, timeout: float = 30.0, address: IPAddress | None = None
) -> MediaInfo:
    """Read the container duration and the stream kinds of ``source`` from ``ffmpeg -i``.

    Uses the same demuxer and protocol allow-lists, redirect ban and address pinning as job
    inputs. Raises ``ValueError`` with ffmpeg's message when the source cannot be opened.
    """
    is_url = "://" in source
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-format_whitelist",
        INPUT_FORMATS,
        "-protocol_whitelist",
        URL_PROTOCOLS if is_url else FILE_PROTOCOLS,
        *(URL_PROBE_ARGS if is_url else ()),
        *(_url_input(source, address) if is_url else ["-i", source]),
    ]
    # ffmpeg -i without an output always exits 1; the header goes to stderr either way.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603 (argv list, no shell)
    err = done.stderr
    if "Input #0" not in err:
        tail = err.strip().splitlines()[-1:] or ["no output"]
        raise ValueError(f"cannot read {source}: {tail[0]}")
    duration: float | None = None
    match = _DURATION.search(err)
    if match:
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return MediaInfo(
        duration_s=duration,
        has_video=bool(re.search(r"Stream #0:\d+.*: Video:", err)),
        has_audio=bool(re.search(r"Stream #0:\d+.*: Audio:", err)),
    )


def bitrate_bps(value: str) -> int:
    """``"2500k"`` -> 2500000, ``"2M"`` -> 2000000, ``"800000"`` -> 800000."""
    match = _BITRATE.fullmatch(value.strip())
    if match is None:
        raise SpecError("bitrate", f"must look like 2500k, 2M or 800000, got {value!r}")
    number, unit = match.groups()
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()]
    bps = int(float(number) * scale)
    if not 10_000 <= bps <= 200_000_000:
        raise SpecError("bitrate", f"must be between 10k and 200M, got {value!r}")
    return bps


def _resolution(value: object, field: str) -> tuple[int, int]:
    match = _RESOLUTION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise SpecError(field, f"must look like 1280x720, got {value!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if width > 7680 or height > 4320:
        raise SpecError(field, f"must be at most 7680x4320, got {value!r}")
    if width % 2 or height % 2:
        raise SpecError(field, f"must have even width and height (yuv420p), got {value!r}")
    return width, height


@dataclass(frozen=True)
class EncodeSettings:
    """A scenario's defaults with a job's overrides applied and checked."""

    bitrate: str
    preset: str
    crf: int | None
    width: int
    height: int
    fps: int

    @property
    def bitrate_bps(self) -> int:
        """The bitrate in bits per second."""
        return bitrate_bps(self.bitrate)


def resolve_settings(scenario: Scenario, overrides: Mapping[str, Any] | None) -> EncodeSettings:
    """Apply ``overrides`` (only the scenario's ``allowed_overrides``) to its defaults."""
    overrides = dict(overrides or {})
    refused = sorted(set(overrides) - set(scenario.allowed_overrides))
    if refused:
        raise SpecError(
            f"overrides.{refused[0]}",
            f"is not allowed for scenario {scenario.name!r} "
            f"(allowed: {', '.join(sorted(scenario.allowed_overrides)) or 'none'})",
        )
    merged = {**scenario.defaults, **overrides}
    bitrate = merged["bitrate"]
    if not isinstance(bitrate, str):
        raise SpecError("overrides.bitrate", f"must be a string like 2500k, got {bitrate!r}")
    bitrate_bps(bitrate)
    preset = merged["preset"]
    if preset not in PRESETS:
        raise SpecError("overrides.preset", f"must be one of {', '.join(PRESETS)}, got {preset!r}")
    crf = merged["crf"]
    if crf is not None and (
        not isinstance(crf, int) or isinstance(crf, bool) or not 0 <= crf <= 63
    ):
        raise SpecError("overrides.crf", f"must be an integer from 0 to 63, got {crf!r}")
    width, height = _resolution(merged["resolution"], "overrides.resolution")
    fps = merged["fps"]
    if not isinstance(fps, int) or isinstance(fps, bool) or not 1 <= fps <= 120:
        raise SpecError("overrides.fps", f"must be an integer from 1 to 120, got {fps!r}")
    return EncodeSettings(bitrate, str(preset), crf, width, height, fps)


@dataclass(frozen=True)
class FFmpegCommand:
    """An ffmpeg invocation built for one job.

    ``argv`` is the full argument list (``argv[0]`` is the ffmpeg path); ``job_dir`` is the
    directory the outputs go to (``None`` for a live push); ``expected_duration_s`` is the
    media duration the job should produce when known (used for percent done); ``secret_args``
    are arguments that must not appear in logs or spans (stream URLs carry keys): pass them as
    ``run_ffmpeg(..., secrets=command.secret_args)``.
    """

    argv: tuple[str, ...]
    job_dir: Path | None
    expected_duration_s: float | None
    live: bool
    secret_args: frozenset[str] = frozenset()


def _check_job_id(job_id: str) -> None:
    if not _JOB_ID.fullmatch(job_id) or job_id in (".", ".."):
        raise SpecError("job_id", f"must match [A-Za-z0-9._-]{{1,64}}, got {job_id!r}")


def input_source(spec_input: Mapping[str, Any], media_root: Path | None) -> str | None:
    """The file path or URL a job reads, checked; ``None`` for a generated test source.

    A file must resolve (symlinks included) to a regular file under ``media_root``; a URL must
    be http(s). Raises :class:`SpecError` naming the field otherwise.
    """
    kind = spec_input.get("type")
    if kind == "testsrc":
        return None
    if kind == "file":
        if media_root is None:
            raise SpecError("input.type", "'file' needs the worker to have a --media-root")
        relative = spec_input.get("path")
        if not isinstance(relative, str) or not relative or "\x00" in relative:
            raise SpecError("input.path", f"must be a non-empty relative path, got {relative!r}")
        root = media_root.resolve()
        candidate = (root / relative).resolve()
        if Path(relative).is_absolute() or not candidate.is_relative_to(root):
            raise SpecError("input.path", f"must stay under the media root, got {relative!r}")
        if not candidate.is_file():
            raise SpecError("input.path", f"{relative!r} does not exist under the media root")
        return str(candidate)
    if kind == "url":
        url = spec_input.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise SpecError("input.url", f"must be an http(s) URL, got {url!r}")
        return str(url)
    raise SpecError("input.type", f"must be testsrc, file or url, got {kind!r}")


def _url_input(source: str, address: IPAddress | None) -> list[str]:
    """``-i URL`` for a network input, pinned to ``address`` when the URL is plain http.

    (An https URL keeps its name: the TLS handshake needs it. The worker's check right
    before the run and the redirect ban still hold for it.)
    """
    if address is not None and urlsplit(source).scheme == "http":
        pinned, host = pinned_http_url(source, address)
        return [*URL_NO_REDIRECT_ARGS, "-headers", f"Host: {host}\r\n", "-i", pinned]
    return [*URL_NO_REDIRECT_ARGS, "-i", source]


def _input_args(
    spec_input: Mapping[str, Any],
    settings: EncodeSettings,
    *,
    live: bool,
    media_root: Path | None,
    input_info: MediaInfo | None,
    input_address: IPAddress | None = None,
) -> tuple[list[str], float | None, bool]:
    """Input arguments, the expected duration and whether there is an audio stream."""
    kind = spec_input.get("type")
    realtime = ["-re"] if live else []
    if kind == "testsrc":
        duration = spec_input.get("duration")
        if (
            not isinstance(duration, int | float)
            or isinstance(duration, bool)
            or not 0 < duration <= 3600
        ):
            raise SpecError("input.duration", f"must be a number in (0, 3600], got {duration!r}")
        size = spec_input.get("size", f"{settings.width}x{settings.height}")
        width, height = _resolution(size, "input.size")
        rate = spec_input.get("rate", settings.fps)
        if not isinstance(rate, int) or isinstance(rate, bool) or not 1 <= rate <= 120:
            raise SpecError("input.rate", f"must be an integer from 1 to 120, got {rate!r}")
        seconds = f"{float(duration):g}"
        video = f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}"
        audio = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
        args = [*realtime, "-f", "lavfi", "-i", video, *realtime, "-f", "lavfi", "-i", audio]
        return args, float(duration), True
    source = input_source(spec_input, media_root)
    protocols = URL_PROTOCOLS if kind == "url" else FILE_PROTOCOLS
    args = [
        *realtime,
        "-format_whitelist",
        INPUT_FORMATS,
        "-protocol_whitelist",
        protocols,
        *(URL_PROBE_ARGS if kind == "url" else ()),
        *(_url_input(str(source), input_address) if kind == "url" else ["-i", str(source)]),
    ]
    duration_s = input_info.duration_s if input_info else None
    has_audio = input_info.has_audio if input_info else True
    return args, duration_s, has_audio


def _video_codec_args(scenario: Scenario, s: EncodeSettings, *, live: bool) -> list[str]:
    encoder = scenario.video_encoder
    bps = s.bitrate_bps
    cap = ["-maxrate", str(bps), "-bufsize", str(2 * bps)]
    gop = ["-g", str(2 * s.fps)]
    if encoder in ("libx264", "libx265"):
        args = ["-c:v", encoder, "-preset", s.preset]
        if live or s.crf is None:
            args += ["-b:v", str(bps), *cap]
        else:
            args += ["-crf", str(s.crf), *cap]
        if live:
            args += ["-tune", "zerolatency"]
        if encoder == "libx265":
            args += ["-x265-params", "log-level=error", "-tag:v", "hvc1"]
        return [*args, *gop]
    if encoder == "libsvtav1":
        args = ["-c:v", encoder, "-preset", _SVT_AV1_PRESETS[s.preset]]
        # SVT-AV1 takes either a CRF or a target bitrate, not a capped CRF.
        args += ["-crf", str(s.crf)] if s.crf is not None else ["-b:v", str(bps)]
        return [*args, *gop]
    if encoder.endswith("_nvenc"):
        args = ["-c:v", encoder, "-preset", _NVENC_PRESETS[s.preset], "-rc", "vbr"]
        args += ["-cq", str(s.crf)] if s.crf is not None else ["-b:v", str(bps)]
        return [*args, *cap, *gop]
    raise SpecError(
        "scenario", f"{scenario.name!r} uses encoder {encoder!r}, unknown to the worker"
    )


def _scale_filter(width: int, height: int, fps: int) -> str:
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p"
    )


_AUDIO = ["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]


def build_command(
    scenario: Scenario,
    spec: Mapping[str, Any],
    *,
    ffmpeg: str,
    job_id: str,
    output_dir: str | os.PathLike[str] | None = None,
    media_root: str | os.PathLike[str] | None = None,
    input_info: MediaInfo | None = None,
    input_address: IPAddress | None = None,
) -> FFmpegCommand:
    """Build the ffmpeg argument list for one job.

    ``spec`` is a job spec as the master validated it (``input``, ``overrides``, ``output``).
    Batch and HLS outputs go to ``output_dir/<job_id>/`` (created by the caller);
    ``input_info`` (from :func:`probe`) gives the duration and audio presence of a file or URL
    input; ``input_address`` is the checked address a plain-http input is pinned to.
    Raises :class:`SpecError` naming the field for anything unsafe or inconsistent.
    """
    _check_job_id(job_id)
    live = scenario.kind == "live"
    settings = resolve_settings(scenario, spec.get("overrides"))
    spec_input = spec.get("input")
    if not isinstance(spec_input, Mapping):
        raise SpecError("input", "must be an object with a type")
    root = Path(media_root) if media_root is not None else None
    input_args, duration_s, has_audio = _input_args(
        spec_input,
        settings,
        live=live,
        media_root=root,
        input_info=input_info,
        input_address=input_address,
    )
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "info",
        "-progress",
        "pipe:1",
        "-stats_period",
        "0.5",
        "-y",
        *input_args,
    ]
    audio_map = ["-map", "1:a:0"] if spec_input.get("type") == "testsrc" else ["-map", "0:a:0?"]
    if not has_audio:
        audio_map = []
    video_codec = _video_codec_args(scenario, settings, live=live)

    if live:
        url = (spec.get("output") or {}).get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("rtmp", "rtmps") or not parts.hostname:
            raise SpecError("output.url", f"must be an rtmp:// or rtmps:// URL, got {url!r}")
        argv += ["-map", "0:v:0", *audio_map, "-vf"]
        argv += [_scale_filter(settings.width, settings.height, settings.fps)]
        argv += [*video_codec, *(_AUDIO if audio_map else []), "-f", "flv", str(url)]
        return FFmpegCommand(tuple(argv), None, duration_s, True, frozenset({str(url)}))

    if output_dir is None:
        raise SpecError(
            "scenario", f"{scenario.name!r} writes files: the worker needs --output-dir"
        )
    job_dir = Path(output_dir) / job_id
    if scenario.kind == "hls":
        argv += _hls_args(scenario, settings, job_dir, audio_map=audio_map)
    else:
        argv += ["-map", "0:v:0", *audio_map, "-vf"]
        argv += [_scale_filter(settings.width, settings.height, settings.fps)]
        argv += [*video_codec, *(_AUDIO if audio_map else [])]
        argv += ["-movflags", "+faststart", str(job_dir / f"output.{scenario.container}")]
    return FFmpegCommand(tuple(argv), job_dir, duration_s, False)


def _hls_args(
    scenario: Scenario, s: EncodeSettings, job_dir: Path, *, audio_map: Sequence[str]
) -> list[str]:
    rungs = scenario.renditions
    labels = [f"[r{i}]" for i in range(len(rungs))]
    graph = f"[0:v]split={len(rungs)}{''.join(labels)}"
    for i, rung in enumerate(rungs):
        width, height = _resolution(rung.resolution, f"rendition {rung.name}")
        graph += f";[r{i}]{_scale_filter(width, height, s.fps)}[v{i}]"
    args = ["-filter_complex", graph]
    stream_map = []
    for i, rung in enumerate(rungs):
        args += ["-map", f"[v{i}]", *audio_map]
        stream_map.append(
            f"v:{i},a:{i},name:{rung.name}" if audio_map else f"v:{i},name:{rung.name}"
        )
    args += ["-c:v", scenario.video_encoder, "-preset", s.preset]
    for i, rung in enumerate(rungs):
        bps = bitrate_bps(rung.bitrate)
        args += [
            f"-b:v:{i}",
            str(bps),
            f"-maxrate:v:{i}",
            str(bps),
            f"-bufsize:v:{i}",
            str(2 * bps),
        ]
    # Keyframes on segment boundaries so every rendition switches cleanly.
    args += ["-g", str(2 * s.fps), "-keyint_min", str(2 * s.fps), "-sc_threshold", "0"]
    if audio_map:
        args += _AUDIO
    args += [
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        str(job_dir / "%v" / "seg_%03d.ts"),
        "-master_pl_name",
        "master.m3u8",
        "-var_stream_map",
        " ".join(stream_map),
        str(job_dir / "%v" / "index.m3u8"),
    ]
    return args


@dataclass(frozen=True)
class Progress:
    """One ``-progress`` block: counters so far and, when the duration is known, percent done."""

    frame: int
    fps: float
    speed: float | None
    out_time_s: float
    percent: float | None
    done: bool


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip().rstrip("x"))
    except ValueError:
        return None  # ffmpeg writes N/A before the first frame


class ProgressParser:
    """Turns ``-progress`` blocks (as ``run_ffmpeg``'s ``on_progress`` hands them) into
    :class:`Progress` snapshots; ``duration_s`` (settable once ffmpeg's log tells it) makes
    them a percentage."""

    def __init__(self, duration_s: float | None = None) -> None:
        self.duration_s = duration_s if duration_s and duration_s > 0 else None
        self.last: Progress | None = None

    def snapshot(self, fields: dict[str, str]) -> Progress:
        """The snapshot of one block (``frame``, ``fps``, ``out_time_us``, ``progress``...)."""
        micros = _number(fields.get("out_time_us")) or _number(fields.get("out_time_ms"))
        out_time_s = max(micros or 0.0, 0.0) / 1_000_000
        percent = None
        done = fields.get("progress", "").strip() == "end"
        if self.duration_s is not None:
            percent = 100.0 if done else min(100.0, 100.0 * out_time_s / self.duration_s)
        self.last = Progress(
            frame=int(_number(fields.get("frame")) or 0),
            fps=_number(fields.get("fps")) or 0.0,
            speed=_number(fields.get("speed")),
            out_time_s=out_time_s,
            percent=percent,
            done=done,
        )
        return self.last


def collect_outputs(job_dir: Path, output_dir: Path) -> list[dict[str, Any]]:
    """Every file under ``job_dir`` as ``{"path": relative to output_dir, "size": bytes}``."""
    outputs = []
    for path in sorted(p for p in job_dir.rglob("*") if p.is_file()):
        outputs.append(
            {"path": path.relative_to(output_dir).as_posix(), "size": path.stat().st_size}
        )
    return outputs


def parse_duration(line: str) -> float | None:
    """The seconds of an ffmpeg ``Duration: 00:01:02.50`` log line, else ``None``."""
    match = _DURATION.search(line)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def hls_duration(playlist: Path) -> float | None:
    """The sum of the ``#EXTINF`` durations of a media playlist (None if it has none)."""
    total = 0.0
    found = False
    for line in playlist.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#EXTINF:"):
            total += float(line[len("#EXTINF:") :].split(",", 1)[0])
            found = True
    return total if found else None


def output_duration(ffmpeg: str, command: FFmpegCommand) -> float | None:
    """The media duration of what ``command`` wrote, read back from the output itself.

    MP4 and other files: the container duration from :func:`probe`. HLS: the first
    rendition's playlist. Live pushes write nothing, so: ``None``.
    """
    job_dir = command.job_dir
    if job_dir is None or not job_dir.is_dir():
        return None
    playlists = sorted(job_dir.glob("*/index.m3u8"))
    if playlists:
        return hls_duration(playlists[0])
    files = sorted(p for p in job_dir.iterdir() if p.is_file())
    if not files:
        return None
    try:
        return probe(ffmpeg, str(files[0])).duration_s
    except ValueError:
        return None


def rtmp_receiver_command(ffmpeg: str, url: str, output: Path, *, timeout_s: int = 60) -> list[str]:
    """argv of ffmpeg's own one-stream RTMP server (``-listen 1``) saving ``url`` to ``output``.

    Enough to watch a live job on one machine; a real deployment pushes to nginx-rtmp or a CDN.
    """
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-listen",
        "1",
        "-timeout",
        str(timeout_s),
        "-i",
        url,
        "-c",
        "copy",
        "-y",
        str(output),
    ]
