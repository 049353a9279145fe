"""Turns a terminal capture with ANSI colours (`tmux capture-pane -e -p`) into a PNG.

    python scripts/terminal_png.py capture.ans docs/img/dashboard.png

Used for the screenshot in docs/dashboard.md; needs Pillow (installed with matplotlib) and the
DejaVu Sans Mono font (Debian's fonts-dejavu-core, found through fontconfig's fc-match), or
any monospace TTF named by --font.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SGR = re.compile(r"\x1b\[([0-9;]*)m")
BASIC = ["#1e1e1e", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2",
         "#dcdfe4"]
BRIGHT = ["#5c6370", "#ff7b86", "#b5e890", "#ffd68a", "#82c4ff", "#de9af0", "#7fd8e3",
          "#ffffff"]
BACKGROUND, FOREGROUND = "#1e1e1e", "#dcdfe4"


def _hex(red: int, green: int, blue: int) -> str:
    return f"#{red:02x}{green:02x}{blue:02x}"


def _xterm256(n: int) -> str:
    if n < 8:
        return BASIC[n]
    if n < 16:
        return BRIGHT[n - 8]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return _hex(steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    grey = 8 + (n - 232) * 10
    return _hex(grey, grey, grey)


def parse(line: str) -> list[tuple[str, str, bool]]:
    """(text, colour, bold) runs of one line."""
    runs, colour, bold, pos = [], FOREGROUND, False, 0
    for match in SGR.finditer(line):
        if match.start() > pos:
            runs.append((line[pos:match.start()], colour, bold))
        codes = [int(c) for c in match.group(1).split(";") if c] or [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                colour, bold = FOREGROUND, False
            elif c == 1:
                bold = True
            elif c == 22:
                bold = False
            elif 30 <= c <= 37:
                colour = BASIC[c - 30]
            elif 90 <= c <= 97:
                colour = BRIGHT[c - 90]
            elif c == 39:
                colour = FOREGROUND
            elif c == 38 and i + 2 < len(codes) and codes[i + 1] == 5:
                colour, i = _xterm256(codes[i + 2]), i + 2
            elif c == 38 and i + 4 < len(codes) and codes[i + 1] == 2:
                colour, i = _hex(*codes[i + 2:i + 5]), i + 4
            i += 1
        pos = match.end()
    runs.append((line[pos:], colour, bold))
    return runs


def monospace_font() -> str:
    """The font file fontconfig picks for DejaVu Sans Mono (or its monospace fallback)."""
    found = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans Mono"],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0 or not found.stdout.endswith(".ttf"):
        raise SystemExit("no monospace TrueType font found; pass --font PATH")
    return found.stdout


def render(text: str, out: Path, font_path: str, size: int = 15) -> None:
    font = ImageFont.truetype(font_path, size)
    bold_path = font_path.replace("Mono.ttf", "Mono-Bold.ttf")
    bold = ImageFont.truetype(bold_path, size) if Path(bold_path).exists() else font
    lines = text.rstrip("\n").split("\n")
    cell_w = font.getlength("M")
    cell_h = int(size * 1.3)
    width = max(len(SGR.sub("", line)) for line in lines)
    image = Image.new("RGB", (int(cell_w * width) + 24, cell_h * len(lines) + 24), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        x = 12.0
        for chunk, colour, is_bold in parse(line):
            draw.text((x, 12 + row * cell_h), chunk, fill=colour, font=bold if is_bold else font)
            x += cell_w * len(chunk)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("capture", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--font", default=None,
                        help="monospace TTF (default: fontconfig's DejaVu Sans Mono)")
    args = parser.parse_args()
    render(args.capture.read_text(errors="replace"), args.png, args.font or monospace_font())


if __name__ == "__main__":
    main()
