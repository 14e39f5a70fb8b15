"""Colour tags: how vt reads a video's colours, converts them, and tags what it writes.

One rule for every path: tags a source has are kept; missing ones are filled the way players
fill them. The YUV<->RGB matrix of an untagged video is BT.709 from 720 lines up and BT.601
below; primaries and transfer follow the matrix; the range is limited ("tv") unless the pixel
format is full-range. The decoder converts to RGB with that matrix, the encoder converts back
with it, and the output carries all four tags, so no player has to guess.

Values are FFmpeg's codes (libavutil/pixfmt.h), as ``VideoStreamInfo.color_codes`` holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from vt.errors import UsageError

#: an untagged video this many lines high or more is read as BT.709, lower ones as BT.601
HD_LINES = 720

_UNSET = (0, 2, 3)  # reserved, unspecified, reserved: "not tagged" for every kind of tag
_RGB = 0  # AVCOL_SPC_RGB: the frames are RGB (GBR) already, no matrix

#: matrix name -> (colorspace, primaries, trc) written for it
MATRICES: dict[str, tuple[int, int, int]] = {
    "bt709": (1, 1, 1),
    "bt601": (6, 6, 6),  # BT.601 525-line (SMPTE 170M); the 625-line matrix is the same
    "bt470bg": (5, 5, 6),  # BT.601 625-line (PAL) primaries
    "bt2020": (9, 9, 14),
}
_ALIASES = {
    "smpte170m": "bt601",
    "601": "bt601",
    "709": "bt709",
    "bt2020nc": "bt2020",
    "2020": "bt2020",
}
#: colorspace code -> the matrix whose primaries/trc fill untagged ones
_SPACE_MATRIX = {1: "bt709", 5: "bt470bg", 6: "bt601", 9: "bt2020", 10: "bt2020"}
#: colorspace code -> libswscale's SWS_CS_* constant (what ``reformat`` takes)
_SWS = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


@dataclass(frozen=True)
class ColorTags:
    """All four tags, none unspecified (FFmpeg codes)."""

    range: int  # 1 tv (limited), 2 pc (full)
    primaries: int
    trc: int
    space: int  # the YUV<->RGB matrix

    @property
    def sws_colorspace(self) -> int | None:
        """The matrix as libswscale's ``SWS_CS_*`` (for ``reformat``); None if it has none."""
        return _SWS.get(self.space)

    def as_codes(self) -> tuple[int, int, int, int]:
        return (self.range, self.primaries, self.trc, self.space)


def matrix_name(name: str) -> str:
    """A user's matrix name (``bt709``, ``bt601``, ``bt470bg``, ``bt2020``, FFmpeg aliases)."""
    key = name.strip().lower().replace(".", "").replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in MATRICES:
        raise UsageError(f"unknown colour matrix {name!r} (use {', '.join(MATRICES)})")
    return key


def player_matrix(height: int) -> str:
    """The matrix players assume for an untagged video of this height."""
    return "bt709" if height >= HD_LINES else "bt601"


def resolve_colors(
    codes: tuple[int, int, int, int],
    height: int,
    *,
    untagged: str | None = None,
    full_range: bool = False,
) -> ColorTags:
    """``codes`` (range, primaries, trc, space) with every missing tag filled in.

    ``untagged`` names the matrix for a video without one (default: :func:`player_matrix`);
    a matrix the video has always wins. RGB sources have no matrix: the one their YUV output
    is converted with is chosen the same way.
    """
    rng, primaries, trc, space = codes
    if space in _UNSET or space == _RGB:
        name = matrix_name(untagged) if untagged else player_matrix(height)
        space = MATRICES[name][0]
    else:
        name = _SPACE_MATRIX.get(space, player_matrix(height))
    _, default_primaries, default_trc = MATRICES[name]
    return ColorTags(
        range=rng if rng in (1, 2) else (2 if full_range else 1),
        primaries=default_primaries if primaries in _UNSET else primaries,
        trc=default_trc if trc in _UNSET else trc,
        space=space,
    )
