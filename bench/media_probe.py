"""The publish-time rendition of one image, alone in a fresh process: its time and the memory it needs on top of
the image's bytes, without the worker's other allocations blurring the figure.

    python -m bench.media_probe IMAGE.jpg      # prints one JSON line
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

from PIL import Image

from bench.procinfo import peak_rss_bytes, reset_peak_rss, rss_bytes
from chronogram.media_rules import render_image


def main(argv: list[str] | None = None) -> int:
    path = Path((argv if argv is not None else sys.argv[1:])[0])
    data = path.read_bytes()
    pid = os.getpid()
    render_image(_small_jpeg())  # Pillow's first-use costs (codecs, tables), outside the measurement
    baseline = rss_bytes(pid)
    resettable = reset_peak_rss(pid)
    began = time.perf_counter()
    rendition = render_image(data)
    seconds = time.perf_counter() - began
    peak = peak_rss_bytes(pid)
    report = {
        "seconds": round(seconds, 3),
        "input_bytes": len(data),
        "rendition_bytes": len(rendition.data),
        "rendition_size": [rendition.width, rendition.height],
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "peak_above_baseline_bytes": peak - baseline if resettable else None,
    }
    print(json.dumps(report))
    return 0


def _small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 400)).save(out, format="JPEG")
    return out.getvalue()


if __name__ == "__main__":
    sys.exit(main())
