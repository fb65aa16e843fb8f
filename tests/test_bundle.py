"""Model bundles: round trip, verification, and refusal of anything that could run code."""

import json
import pickle

import numpy as np
import pytest

from napari_euclidphys import BANDS
from napari_euclidphys.estimators import make_estimator
from napari_euclidphys.features import MinMaxScaling, pixel_features
from napari_euclidphys.bundle import SCHEMA_VERSION, BundleError, ModelBundle, file_sha256
from napari_euclidphys.io.safe import OutputExistsError


def _bands(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return (10 ** rng.uniform(-0.2, 1.5, (n, 4))).astype(np.float32)


def _rehash(path, name):
    """What an attacker does after swapping a model file: make bundle.json list its new sha256."""
    meta = json.loads((path / "bundle.json").read_text())
    meta["files"][name] = file_sha256(path / name)
    (path / "bundle.json").write_text(json.dumps(meta))


def make_bundle(kind="lr", feature_set="bands", targets=("mass", "age"), params=None, card=None):
    sb = _bands()
    X_raw = pixel_features(sb, feature_set)
    scaling = MinMaxScaling.fit(X_raw)
    X = scaling.transform(X_raw)
    log = np.log10(sb)
    ys = {"mass": 0.3 + 1.1 * log[:, 3] - 0.2 * log[:, 0],
          "metallicity": -1.7 + 0.1 * log[:, 3],
          "age": 0.5 + 0.3 * (log[:, 0] - log[:, 3])}
    ests = {t: make_estimator(kind, **(params or {})).fit(X, ys[t]) for t in targets}
    return ModelBundle(ests, feature_set, scaling, 0.55, name=f"test-{kind}",
                       provenance={"seed": 1, "test_ids": [3, 4]}, metrics={"test": {"mass": {"r2": 0.9}}},
                       model_card=card), sb


PARAMS = {"lr": {}, "rf": {"n_estimators": 6, "min_samples_leaf": 3},
          "dnn": {"max_epochs": 4, "epochs_per_step": 2, "batch_size": 128, "n_members": 2}}


@pytest.mark.parametrize("kind", ["lr", "rf", "dnn"])
def test_roundtrip_identical_predictions(kind, tmp_path):
    bundle, sb = make_bundle(kind, params=PARAMS[kind], card="# card\nsynthetic")
    before = bundle.predict_log(sb)
    path = bundle.save(tmp_path / "b")
    back = ModelBundle.load(path)
    assert back.targets == ("mass", "age") and back.kind == kind and back.name == f"test-{kind}"
    assert back.feature_set == "bands" and back.clip_h == 0.55
    assert back.sha256 == bundle.sha256 == file_sha256(path / "bundle.json")
    assert back.model_card.startswith("# card")
    after = back.predict_log(sb)
    for t in ("mass", "age"):
        np.testing.assert_array_equal(before[t][0], after[t][0])
        np.testing.assert_array_equal(before[t][1], after[t][1])
        assert after[t][0].dtype == np.float32 and after[t][0].shape == (len(sb),)
    meta = json.loads((path / "bundle.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION and meta["bands"] == list(BANDS)
    assert meta["targets"]["mass"]["unit"] == "Msun/pc2" and meta["targets"]["age"]["unit"] == "Gyr"
    assert meta["provenance"]["test_ids"] == [3, 4]
    assert set(meta["files"]) >= {"model_mass.json", "model_age.json", "MODEL_CARD.md"}
    for name, digest in meta["files"].items():
        assert file_sha256(path / name) == digest
    if kind == "dnn":
        assert np.all(after["mass"][1] > 0)  # ensemble of 2 -> a spread
    if kind == "lr":
        assert np.all(np.isnan(after["mass"][1]))


def test_lr_bundle_predicts_the_known_relation(tmp_path):
    bundle, sb = make_bundle("lr", targets=("mass",))
    pred = bundle.predict_log(sb)["mass"][0]
    log = np.log10(sb)
    np.testing.assert_allclose(pred, 0.3 + 1.1 * log[:, 3] - 0.2 * log[:, 0], atol=1e-4)


def test_save_refuses_existing_folder(tmp_path):
    bundle, _ = make_bundle()
    bundle.save(tmp_path / "b")
    with pytest.raises(OutputExistsError):
        bundle.save(tmp_path / "b")
    bundle.save(tmp_path / "b", overwrite=True)
    ModelBundle.load(tmp_path / "b")


def test_wrong_hash_is_refused(tmp_path):
    bundle, _ = make_bundle()
    path = bundle.save(tmp_path / "b")
    meta = json.loads((path / "model_mass.json").read_text())
    meta["params"]["fit_intercept"] = False
    (path / "model_mass.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"model_mass\.json: sha256 mismatch"):
        ModelBundle.load(path)


def test_unknown_schema_and_missing_json(tmp_path):
    bundle, _ = make_bundle()
    path = bundle.save(tmp_path / "b")
    meta = json.loads((path / "bundle.json").read_text())
    meta["schema_version"] = 99
    (path / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"bundle\.json: unknown schema_version 99"):
        ModelBundle.load(path)
    meta["schema_version"] = SCHEMA_VERSION
    meta["targets"]["../../escape"] = meta["targets"].pop("mass")
    (path / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"unknown target '../../escape' in 'targets'"):
        ModelBundle.load(path)
    with pytest.raises(BundleError, match="not a model bundle"):
        ModelBundle.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="bundle.json: missing"):
        ModelBundle.load(tmp_path / "empty")


class _Exploit:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_as_model_file_never_executes(tmp_path):
    bundle, _ = make_bundle()
    path = bundle.save(tmp_path / "b")
    proof = tmp_path / "PWNED"
    payload = pickle.dumps(_Exploit(proof))
    # sanity: this payload really does create the file when unpickled
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Exploit(probe))).close()
    assert probe.exists()
    # the attacker replaces the model by the pickle and fixes the hash in bundle.json
    (path / "model_mass.skops").write_bytes(payload)
    _rehash(path, "model_mass.skops")
    with pytest.raises(BundleError, match=r"model_mass\.skops.*pickle"):
        ModelBundle.load(path)
    assert not proof.exists()


def test_protocol0_pickle_and_extra_pickle_files_refused(tmp_path):
    bundle, _ = make_bundle()
    path = bundle.save(tmp_path / "b")
    proof = tmp_path / "PWNED0"
    (path / "model_age.skops").write_bytes(pickle.dumps(_Exploit(proof), protocol=0))
    _rehash(path, "model_age.skops")
    with pytest.raises(BundleError, match=r"model_age\.skops.*(pickle|ZIP)"):
        ModelBundle.load(path)
    assert not proof.exists()
    path2 = make_bundle()[0].save(tmp_path / "c")
    (path2 / "extra.joblib").write_bytes(pickle.dumps(_Exploit(proof)))
    with pytest.raises(BundleError, match=r"extra\.joblib.*pickle-like"):
        ModelBundle.load(path2)
    assert not proof.exists()


def test_skops_file_with_untrusted_types_refused(tmp_path):
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    bundle, _ = make_bundle()
    path = bundle.save(tmp_path / "b")
    sio.dump(FunctionTransformer(func=os.system), path / "model_mass.skops")
    _rehash(path, "model_mass.skops")
    with pytest.raises(BundleError, match=r"model_mass\.skops: refusing to load: untrusted types"):
        ModelBundle.load(path)


@pytest.mark.parametrize("variant", ["lambda_layer", "functional"])
def test_keras_file_with_code_or_unknown_graph_refused(variant, tmp_path):
    import keras

    bundle, _ = make_bundle("dnn", targets=("mass",), params={"max_epochs": 1, "batch_size": 128})
    path = bundle.save(tmp_path / "b")
    proof = tmp_path / "PWNED"
    if variant == "lambda_layer":
        payload = eval(f"lambda x: x + 0 * len(open({str(proof)!r}, 'w').name)")  # creates a file when run
        evil = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(payload), keras.layers.Dense(1)])
        expected = r"model_mass\.keras: refusing to load: layer 'lambda' is a Lambda"
    else:
        inp = keras.Input((4,))
        evil = keras.Model(inp, keras.layers.Dense(1)(inp))
        expected = r"model_mass\.keras: refusing to load: a 'Functional' model"
    evil.save(tmp_path / "evil.keras")
    proof.unlink(missing_ok=True)  # building the Lambda above ran it once, here, on purpose
    (path / "model_mass.keras").write_bytes((tmp_path / "evil.keras").read_bytes())
    _rehash(path, "model_mass.keras")
    with pytest.raises(BundleError, match=expected):
        ModelBundle.load(path)
    assert not proof.exists()


def test_loading_a_dnn_bundle_does_not_import_tensorflow(tmp_path):
    """Importing TensorFlow after a napari viewer exists crashes; prediction must not need it."""
    import subprocess
    import sys

    bundle, sb = make_bundle("dnn", targets=("mass",), params={"max_epochs": 1, "batch_size": 128})
    path = bundle.save(tmp_path / "b")
    np.save(tmp_path / "sb.npy", sb)
    expected = bundle.predict_log(sb)["mass"][0]
    code = (
        "import sys, numpy as np\n"
        "from napari_euclidphys.bundle import ModelBundle\n"
        f"b = ModelBundle.load({str(path)!r})\n"
        f"m = b.predict_log(np.load({str(tmp_path / 'sb.npy')!r}))['mass'][0]\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, m)\n"
        "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "TF False False" in out.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_unlisted_model_file_refused(tmp_path):
    bundle, _ = make_bundle()
    path = bundle.save(tmp_path / "b")
    (path / "model_mass.skops").rename(path / "sneaky.skops")
    (path / "model_mass.skops").write_bytes((path / "sneaky.skops").read_bytes())
    with pytest.raises(BundleError, match=r"sneaky\.skops: refusing the bundle: model file not listed"):
        ModelBundle.load(path)


def test_constructor_validation():
    bundle, _ = make_bundle()
    with pytest.raises(ValueError, match="unknown targets"):
        ModelBundle({"colour": bundle.estimators["mass"]}, "bands", bundle.scaling, 0.55, "x")
    with pytest.raises(ValueError, match="scaling has 4 features"):
        ModelBundle(bundle.estimators, "colours", bundle.scaling, 0.55, "x")
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        bundle.predict_log(np.ones((3, 3)))
