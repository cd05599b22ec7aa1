"""Render a captured terminal pane (`tmux capture-pane -p -e`, ANSI colours kept) to a PNG for the README.

    tmux capture-pane -p -e -t SESSION > pane.ans && python docs/pane_to_png.py pane.ans docs/console.png
"""
from __future__ import annotations

import sys

from PIL import Image, ImageDraw, ImageFont
from rich.text import Text

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SIZE, PAD = 15, 14
BACKGROUND, FOREGROUND = (30, 30, 36), (220, 220, 220)


def colour(style) -> tuple[int, int, int]:
    if style is None or style.color is None or style.color.is_default:
        return (150, 150, 150) if style is not None and style.dim else FOREGROUND
    return tuple(style.color.get_truecolor())


def main(src: str, dst: str) -> None:
    lines = [Text.from_ansi(line) for line in open(src, encoding="utf-8").read().rstrip("\n").split("\n")]
    while lines and not lines[-1].plain.strip():
        lines.pop()
    regular, bold = ImageFont.truetype(FONT, SIZE), ImageFont.truetype(BOLD, SIZE)
    cell_w = regular.getbbox("M")[2]
    cell_h = sum(regular.getmetrics())          # ascent + descent: box-drawing lines join up
    width = max(len(t.plain) for t in lines)
    image = Image.new("RGB", (2 * PAD + width * cell_w, 2 * PAD + len(lines) * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for row, text in enumerate(lines):
        styles = [None] * len(text.plain)
        for span in text.spans:
            for i in range(span.start, min(span.end, len(styles))):
                styles[i] = span.style
        for col, char in enumerate(text.plain):
            style = styles[col] if not isinstance(styles[col], str) else None
            font = bold if style is not None and style.bold else regular
            draw.text((PAD + col * cell_w, PAD + row * cell_h), char, font=font, fill=colour(style))
    image.save(dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
