"""Convert a random-forest bundle stored with skops into the packed form (``model_<t>.forest.npz``).

    python tools/pack_rf_bundle.py models/euclidphys-rf-bands-synth --keep-skops

The trees are not retrained: each scikit-learn forest is packed as it is (thresholds to the largest
float32 not above scikit-learn's, leaf values float32), so predictions equal scikit-learn's to
float32 precision.  Name, provenance, metrics and model card are kept; the card gets a "Storage"
section.  With ``--keep-skops`` the original ``model_<t>.skops`` files stay in the bundle as
reference copies, hashed in ``bundle.json`` like every file, but no longer read by this package
(``targets.<t>.model_files`` names the packed file).  The bundle is replaced atomically.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

STORAGE = """
## Storage
Each forest is stored packed, `model_<target>.forest.npz`: plain numeric arrays (8-byte nodes with
float32 thresholds, float32 leaf values), read with `numpy.load(allow_pickle=False)` and checked node
by node; no scikit-learn is needed to predict. The arrays are the scikit-learn forests trained here,
converted by `tools/pack_rf_bundle.py` without retraining (predictions equal scikit-learn's to float32
precision).{keep}
"""
KEEP = """ The original scikit-learn forests are kept beside them as `model_<target>.skops`
(skops files, hashed in bundle.json) for scikit-learn users and as the baseline of
`benchmarks/bench_predict_process.py`; this package does not read them."""


def pack_bundle(src: Path, keep_skops: bool) -> Path:
    """Replace the skops forests of bundle ``src`` by packed ones (atomically); returns ``src``."""
    from napari_euclidphys.bundle import ModelBundle, file_sha256

    bundle = ModelBundle.load(src)
    if bundle.kind != "rf":
        raise SystemExit(f"{src}: a {bundle.kind!r} bundle, not a random forest")
    skops = sorted(p.name for p in src.glob("model_*.skops"))
    for est in bundle.estimators.values():
        est.to_packed()
    if bundle.model_card and "## Storage" not in bundle.model_card:
        card = bundle.model_card.replace("random forest (scikit-learn)", "random forest (scikit-learn trees, stored packed)")
        marker = "\n## Training data"
        storage = STORAGE.format(keep=KEEP if keep_skops else "")
        bundle.model_card = card.replace(marker, storage + marker, 1) if marker in card else card + storage
    with tempfile.TemporaryDirectory(dir=src.parent) as tmp:
        out = bundle.save(Path(tmp) / src.name)
        if keep_skops:
            meta = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
            for name in skops:
                shutil.copy2(src / name, out / name)
                meta["files"][name] = file_sha256(out / name)
            meta["files"] = dict(sorted(meta["files"].items()))
            text = json.dumps(meta, indent=2, sort_keys=False, allow_nan=False) + "\n"
            (out / "bundle.json").write_text(text, encoding="utf-8")
        ModelBundle.load(out)  # verifies every hash before the original is replaced
        old = Path(tmp) / "old"
        src.rename(old)
        out.rename(src)
    return src


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bundle", help="random-forest bundle folder (skops forests)")
    p.add_argument("--keep-skops", action="store_true", help="keep the skops files as reference copies")
    args = p.parse_args(argv)
    path = pack_bundle(Path(args.bundle), args.keep_skops)
    print(f"{path}: {', '.join(sorted(f.name for f in path.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
