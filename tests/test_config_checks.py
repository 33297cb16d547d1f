"""``check-config`` refuses what the device would hit: rate mismatch, unloadable model, no interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.bundle import load_bundle, pack_bundle, sha256_hex
from edge_agent.config import load_config
from edge_agent.config_runtime import interpreter_advice
from tests.test_config import assert_one_line_error, check_config, write_config

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "firmware_configs" / "profiles"


def repack(bundle: Path, out: Path, *, model: bytes | None = None, **manifest: object) -> Path:
    """A copy of ``bundle`` with manifest keys replaced (and/or other model bytes), hashes redone."""
    loaded = load_bundle(bundle)
    doc = json.loads(json.dumps(loaded.manifest))
    doc.update(manifest)
    model_bytes = loaded.model_bytes if model is None else model
    doc["model"] = {**doc["model"], "bytes": len(model_bytes), "sha256": sha256_hex(model_bytes)}
    out.write_bytes(pack_bundle(doc, model_bytes))
    return out


# ----------------------------------------------------------------------------- interpreter advice


@pytest.mark.parametrize(("machine", "python", "words"), [
    ("x86_64", (3, 12), ["ai-edge-litert", "x86_64", "3.12"]),
    ("aarch64", (3, 10), ["ai-edge-litert", "aarch64"]),
    ("armv7l", (3, 11), ["tflite-runtime", "numpy<2", "armv7l"]),
    ("armv7l", (3, 12), ["no TFLite interpreter is published", "3.11", "aarch64"]),
    ("riscv64", (3, 12), ["no TFLite interpreter package is known for riscv64"]),
])
def test_interpreter_advice_fits_machine_and_python(machine: str, python: tuple[int, int], words: list[str]) -> None:
    advice = interpreter_advice(machine, python)
    assert "\n" not in advice
    for word in words:
        assert word in advice, advice
    if machine == "armv7l" and python >= (3, 12):
        assert "install" not in advice.split(":")[0]  # nothing to install on that pair


BLOCK_INTERPRETERS = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"ai_edge_litert", "tflite_runtime"}:
            raise ModuleNotFoundError(f"blocked in this test: {name}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from edge_agent.launcher import main
raise SystemExit(main(sys.argv[1:], prog="vigil agent"))
"""


@pytest.mark.slow  # uses the converted tiny bundle
def test_missing_interpreter_is_one_line_naming_the_package(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    path = write_config(tmp_path, tiny_bundle_3f)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", BLOCK_INTERPRETERS, "check-config", str(path)],
                            capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    import platform

    expected = interpreter_advice(platform.machine(), sys.version_info[:2])
    assert "no TFLite interpreter" in result.stderr and expected in result.stderr and str(path) in result.stderr


# ----------------------------------------------------------------------------- model and rate


@pytest.mark.slow  # uses the converted tiny bundle
def test_check_config_loads_the_model_in_the_interpreter(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    code, out, err = check_config(write_config(tmp_path / "good", tiny_bundle_3f))
    assert code == 0, err
    assert "# the model loads in " in out
    model = load_bundle(tiny_bundle_3f).model_bytes
    broken = repack(tiny_bundle_3f, tmp_path / "broken.vigil", model=model[: len(model) // 3])
    path = write_config(tmp_path / "bad", broken)
    assert load_config(path).bundle is not None  # the bundle itself is intact: only the runtime can tell
    line = assert_one_line_error(path, "bundle.path", "cannot load the model")
    assert "broken.vigil" in line


@pytest.mark.slow  # uses the converted tiny bundle
def test_source_rate_must_be_the_bundles(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    assert load_bundle(tiny_bundle_3f).sampling_rate_hz == 100.0
    path = write_config(tmp_path, tiny_bundle_3f)
    text = path.read_text()
    path.write_text(text.replace('pace = "fast"', 'pace = "fast"\nrate_hz = 250.0'))
    line = assert_one_line_error(path, "source.rate_hz", "250 Hz", "100 Hz")
    assert "trained" in line
    path.write_text(text.replace('pace = "fast"', 'pace = "fast"\nrate_hz = 100.0'))
    code, _, err = check_config(path)
    assert code == 0, err


@pytest.mark.slow  # uses the converted tiny bundle
@pytest.mark.parametrize(("profile", "rate"), [("rpi4-adxl345.toml", 400.0), ("rpi-zero2w-mpu6050.toml", 200.0)])
def test_sensor_profiles_refuse_a_bundle_trained_at_another_rate(tmp_path: Path, tiny_bundle_3f: Path,
                                                                 profile: str, rate: float) -> None:
    # The demo bundle (x, y, z at 250 Hz) with a 400 Hz ADXL345 profile passed before.
    demo_like = repack(tiny_bundle_3f, tmp_path / "xyz250.vigil", features=["x", "y", "z"], sampling_rate_hz=250.0)
    matching = repack(tiny_bundle_3f, tmp_path / "xyz.vigil", features=["x", "y", "z"], sampling_rate_hz=rate)
    text = (PROFILES / profile).read_text()
    config = tmp_path / profile
    config.write_text(text.replace('path = "/var/lib/vigil/model.vigil"', f'path = "{demo_like}"'))
    from edge_agent.errors import VigilInputError

    with pytest.raises(VigilInputError) as err:
        load_config(config, check_files=False)  # TLS files and secrets exist only on the device
    assert err.value.key == "source.rate_hz" and "250 Hz" in str(err.value)
    config.write_text(text.replace('path = "/var/lib/vigil/model.vigil"', f'path = "{matching}"'))
    assert load_config(config, check_files=False).source.rate_hz == rate


@pytest.mark.slow  # uses the converted tiny bundle
def test_line_sources_default_to_the_bundles_features(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    path = write_config(tmp_path, tiny_bundle_3f)
    path.write_text(path.read_text().replace('kind = "replay"\npath = "data.csv"\npace = "fast"',
                                             'kind = "stdin"\nrate_hz = 100.0'))
    cfg = load_config(path)
    assert cfg.source.kind == "stdin" and cfg.source.features == ("f0", "f1", "f2")
    code, out, err = check_config(path)
    assert code == 0, err
    assert 'features = ["f0", "f1", "f2"]' in out


@pytest.mark.slow  # uses the converted tiny bundle
def test_trusted_keys_require_a_signature_by_one_of_them(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    from edge_agent.bundle import sign_bundle
    from edge_agent.errors import VigilInputError
    from edge_agent.signing import new_signing_key, write_key_file

    plant, stranger = new_signing_key(), new_signing_key()
    write_key_file(tmp_path / "plant.key", plant)
    signed = tmp_path / "signed.vigil"
    signed.write_bytes(sign_bundle(tiny_bundle_3f.read_bytes(), plant))

    def config(bundle: Path, keys: str) -> Path:
        path = write_config(tmp_path / bundle.stem / keys[:8].strip('"/'), bundle)
        path.write_text(path.read_text().replace(f'path = "{bundle}"', f'path = "{bundle}"\ntrusted_keys = [{keys}]'))
        return path

    assert load_config(config(signed, f'"{tmp_path / "plant.key.pub"}"')).bundle is not None
    assert load_config(config(signed, f'"{plant.public_key}"')).bundle is not None
    for bundle, keys in [(signed, f'"{stranger.public_key}"'), (tiny_bundle_3f, f'"{plant.public_key}"')]:
        with pytest.raises(VigilInputError) as err:
            load_config(config(bundle, keys))
        assert err.value.key == "bundle.trusted_keys" and "refused" in str(err.value), str(err.value)
