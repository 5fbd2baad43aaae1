"""Media intake: accept JPEG and PNG, read the camera fields, strip every metadata block,
keep the orientation applied, and store the stripped bytes content-addressed by SHA-256.

Those exact bytes are what is approved and uploaded: a byte changed afterwards changes the
hash, and the gate reports the approval no longer matches.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from publisher.errors import InvalidInput

_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
_EXT = {"image/jpeg": "jpg", "image/png": "png"}
_MAKE, _MODEL, _SERIAL = 0x010F, 0x0110, 0xA431
_EXIF_IFD = 0x8769
_METADATA_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "iptc", "adobe", "dpi", "icc_profile")


@dataclass(frozen=True)
class Intake:
    data: bytes
    sha256: str
    mime: str
    width: int
    height: int
    camera_make: str
    camera_model: str
    camera_serial: str


def _camera(img: Image.Image) -> tuple[str, str, str]:
    exif = img.getexif()
    sub = exif.get_ifd(_EXIF_IFD)

    def field(value: object) -> str:
        return str(value).strip("\x00 ").strip() if value else ""

    return field(exif.get(_MAKE)), field(exif.get(_MODEL)), field(sub.get(_SERIAL))


def _open(data: bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:
        raise InvalidInput(
            f"{name} is not a readable JPEG or PNG image ({type(exc).__name__}): "
            "export it again from the camera or phone"
        ) from None
    if img.format not in _FORMATS:
        raise InvalidInput(f"{name} is {img.format or 'an unknown format'}; only JPEG and PNG are accepted")
    return img


def strip(data: bytes, name: str) -> Intake:
    """Validate and strip one image; raise InvalidInput with the file named if it cannot be taken."""
    img = _open(data, name)
    mime = _FORMATS[str(img.format)]
    make, model, serial = _camera(img)
    upright = ImageOps.exif_transpose(img)
    out = io.BytesIO()
    if mime == "image/jpeg":
        if upright.mode not in ("RGB", "L"):
            upright = upright.convert("RGB")
        clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())
        clean.save(out, "JPEG", quality=92, optimize=True)
    else:
        clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())
        if upright.mode == "P":
            clean.putpalette(upright.getpalette() or [])
        clean.save(out, "PNG", optimize=True)
    stripped = out.getvalue()
    return Intake(stripped, hashlib.sha256(stripped).hexdigest(), mime, clean.width, clean.height, make, model, serial)


def metadata_blocks(data: bytes) -> list[str]:
    """The metadata blocks present in an image (empty for what intake writes)."""
    with Image.open(io.BytesIO(data)) as img:
        return _blocks(img)


def _blocks(img: Image.Image) -> list[str]:
    found: list[str] = [k for k in _METADATA_KEYS if k in img.info and k != "dpi"]
    if len(img.getexif()):
        found.append("exif-tags")
    if img.format == "PNG":
        found += [str(k) for k in img.info if isinstance(img.info[k], str) and k not in found]
    return found


def store(media_dir: Path, intake: Intake) -> Path:
    """Write the stripped bytes under media_dir/ab/<sha256>.<ext>, atomically; idempotent."""
    path = media_path(media_dir, intake.sha256, intake.mime)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(intake.data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def media_path(media_dir: Path, sha256: str, mime: str) -> Path:
    return media_dir / sha256[:2] / f"{sha256}.{_EXT[mime]}"


def read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidInput(f"No media file at {path}: check the path") from None
    if size > max_bytes:
        raise InvalidInput(f"{path.name} is {size:,} bytes, over the {max_bytes:,}-byte limit: resize it first")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path} cannot be read ({exc.strerror})") from None
