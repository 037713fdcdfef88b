"""Tile PNG frames into a single contact-sheet PNG, using Blender's image API.

Usage:
    blender -b --factory-startup --python-exit-code 1 \
        --python contact_sheet.py -- OUT.png IN1.png IN2.png ...

Frames are laid out left to right, top to bottom, COLUMNS per row, each
scaled to the size of the first frame (after an optional downscale).
Uses only bpy (Blender's Python has neither PIL nor numpy).
"""
import os
import sys

import bpy

COLUMNS = 4
SCALE = 0.5   # downscale each frame to keep the sheet small
GAP = 2       # pixels of dark border between tiles


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) < 2:
        raise SystemExit("usage: blender -b --python contact_sheet.py -- OUT.png IN.png...")
    out, inputs = os.path.abspath(argv[0]), argv[1:]

    # Load every frame and bring it to a common tile size.
    tiles = []
    for path in inputs:
        img = bpy.data.images.load(os.path.abspath(path))
        if img.size[0] == 0:
            raise SystemExit("cannot read image: " + path)
        if not tiles:
            tw, th = max(1, int(img.size[0] * SCALE)), max(1, int(img.size[1] * SCALE))
        img.scale(tw, th)
        tiles.append(list(img.pixels))  # flat RGBA floats, bottom row first

    cols = min(COLUMNS, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    width = cols * tw + (cols + 1) * GAP
    height = rows * th + (rows + 1) * GAP

    # Dark grey background, then copy each tile row by row.
    sheet = [0.1, 0.1, 0.1, 1.0] * (width * height)
    for i, px in enumerate(tiles):
        col, row = i % cols, i // cols
        x0 = GAP + col * (tw + GAP)
        y0 = height - (row + 1) * (th + GAP)  # Blender images start at the bottom
        for y in range(th):
            dst = ((y0 + y) * width + x0) * 4
            sheet[dst:dst + tw * 4] = px[y * tw * 4:(y + 1) * tw * 4]

    # Write the result as an 8-bit RGB PNG.
    result = bpy.data.images.new("ContactSheet", width, height, alpha=False)
    result.pixels[:] = sheet
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # Image.save() writes the raw pixels (save_render would re-apply the
    # scene's Filmic view transform and wash the colours out).
    result.filepath_raw = out
    result.file_format = "PNG"
    result.save()
    print("contact_sheet: wrote %s (%dx%d, %d frames)" % (out, width, height, len(tiles)))


main()
