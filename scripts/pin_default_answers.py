"""Write tests/data/default_answers.json: the shipped model's probabilities on 24 generated
paintings, which tests/test_default_model.py holds every later tree to.

    python scripts/pin_default_answers.py

Run it only when the shipped model is retrained (scripts/train_default_model.sh): a refactor
must leave these answers as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from synth import STYLES, paint  # noqa: E402

from artstyle import StyleClassifier, default_model_path  # noqa: E402

OUT = ROOT / "tests" / "data" / "default_answers.json"


def pictures():
    """24 generated paintings: six of each of four styles, by artists of no training set."""
    return [paint(style, artist=20 + i, seed=7000 + 10 * i + k) for k, style in enumerate(list(STYLES)[:4]) for i in range(6)]


def main() -> None:
    clf = StyleClassifier.load(default_model_path(), precision="fp32", cache_dir=False, show_progress=False)
    proba = clf.predict_proba(pictures())
    config = json.loads((default_model_path() / "config.json").read_text())
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"model_created": config.get("created"), "labels": list(clf.classes_),
                               "probabilities": [[round(float(p), 6) for p in row] for row in proba]}, indent=1) + "\n")
    print(f"{OUT}: {len(proba)} answers of the model created {config.get('created')}")


if __name__ == "__main__":
    main()
