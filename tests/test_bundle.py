"""The .vigil bundle: layout, verification on load, one-line refusals."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.bundle import (
    BUNDLE_FORMAT,
    FORMAT_ENTRY,
    LAYOUT,
    MANIFEST_ENTRY,
    MANIFEST_HASH_ENTRY,
    MODEL_ENTRY,
    load_bundle,
    pack_bundle,
    parse_bundle,
    sha256_hex,
)
from edge_agent.errors import VigilInputError

# Keys FORMAT.md promises in every manifest written by the converter.
MANIFEST_KEYS = {
    "format", "model_id", "created", "features", "timestamp_column", "sampling_rate_hz", "window", "hop",
    "scaler", "score", "threshold", "smoothing", "quantization", "io", "ops", "model", "source_run",
    "conversion", "versions",
}


def _manifest(model_bytes: bytes, **changes: object) -> dict:
    manifest = {
        "format": BUNDLE_FORMAT,
        "model_id": "test-0123456789ab",
        "created": "2026-11-23T08:00:00Z",
        "features": ["a", "b"],
        "timestamp_column": None,
        "sampling_rate_hz": 50.0,
        "window": 8,
        "hop": 2,
        "scaler": {"kind": "minmax", "offset": [0.0, 1.0], "scale": [2.0, 4.0]},
        "score": {"function": "mae", "weights": [1.0, 3.0]},
        "threshold": {"value": 0.25, "strategy": "mean+k*std", "k": 3},
        "smoothing": {"alpha": 0.5},
        "quantization": {"mode": "float32", "details": {}},
        "io": {side: {"shape": [1, 8, 2], "dtype": "float32", "quantization": {"scale": None, "zero_point": None}}
               for side in ("input", "output")},
        "model": {"file": MODEL_ENTRY, "sha256": sha256_hex(model_bytes), "bytes": len(model_bytes)},
    }
    manifest.update(changes)
    return manifest


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def _entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


MODEL = bytes(range(256)) * 8


def test_pack_then_parse_round_trip_keeps_every_scoring_parameter() -> None:
    data = pack_bundle(_manifest(MODEL), MODEL)
    bundle = parse_bundle(data, "mem.vigil")
    assert bundle.features == ["a", "b"]
    assert (bundle.spec.window, bundle.spec.hop) == (8, 2)
    assert bundle.scaler.offset == [0.0, 1.0] and bundle.scaler.scale == [2.0, 4.0]
    assert bundle.score_function == "mae" and bundle.weights == [1.0, 3.0]
    assert bundle.threshold == 0.25 and bundle.smoothing_alpha == 0.5
    assert bundle.model_bytes == MODEL and bundle.quantization == "float32"
    assert tuple(_entries(data)) == LAYOUT
    # Fixed member timestamps: packing the same content twice gives the same bytes.
    assert pack_bundle(_manifest(MODEL), MODEL) == data


def _refusal(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "bad.vigil"
    path.write_bytes(data)
    with pytest.raises(VigilInputError) as info:
        load_bundle(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_model_swapped_behind_the_manifest_is_refused(tmp_path: Path) -> None:
    other = bytes(reversed(MODEL))
    message = _refusal(pack_bundle(_manifest(MODEL), other), tmp_path)
    assert "model hash mismatch" in message


def test_edited_manifest_is_refused(tmp_path: Path) -> None:
    entries = _entries(pack_bundle(_manifest(MODEL), MODEL))
    manifest = json.loads(entries[MANIFEST_ENTRY])
    manifest["threshold"]["value"] = 99.0  # someone "tunes" the threshold by hand
    entries[MANIFEST_ENTRY] = json.dumps(manifest).encode()
    assert "manifest hash mismatch" in _refusal(_zip(entries), tmp_path)


def test_flipped_byte_and_truncation_are_refused(tmp_path: Path) -> None:
    data = bytearray(pack_bundle(_manifest(MODEL), MODEL))
    at = bytes(data).index(MODEL[:64]) + 100
    data[at] ^= 0xFF
    assert "damaged" in _refusal(bytes(data), tmp_path)
    good = pack_bundle(_manifest(MODEL), MODEL)
    assert "truncated or damaged" in _refusal(good[: len(good) // 2], tmp_path)
    assert "truncated or damaged" in _refusal(b"", tmp_path)


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    entries = _entries(pack_bundle(_manifest(MODEL), MODEL))
    entries[FORMAT_ENTRY] = b"vigil-bundle/9\n"
    message = _refusal(_zip(entries), tmp_path)
    assert "unknown bundle format 'vigil-bundle/9'" in message and BUNDLE_FORMAT in message


def test_foreign_zip_and_missing_keys_are_refused(tmp_path: Path) -> None:
    assert "not a vigil bundle" in _refusal(_zip({"model.tflite": MODEL}), tmp_path)
    manifest = _manifest(MODEL)
    del manifest["scaler"]
    assert "key 'scaler'" in _refusal(pack_bundle(manifest, MODEL), tmp_path)
    wrong_io = _manifest(MODEL)
    wrong_io["io"]["input"]["shape"] = [4, 8, 2]
    assert "input shape [4, 8, 2]" in _refusal(pack_bundle(wrong_io, MODEL), tmp_path)
    entries = _entries(pack_bundle(_manifest(MODEL), MODEL))
    assert entries[MANIFEST_HASH_ENTRY].strip() == sha256_hex(entries[MANIFEST_ENTRY]).encode()


def test_cli_refuses_a_tampered_bundle_with_one_line(tmp_path: Path) -> None:
    from vigil.cli import app

    bundle = tmp_path / "tampered.vigil"
    bundle.write_bytes(pack_bundle(_manifest(MODEL), bytes(reversed(MODEL))))
    data = tmp_path / "d.csv"
    data.write_text("a,b\n" + "\n".join(f"{i},{i}" for i in range(20)) + "\n")
    result = CliRunner().invoke(app, ["score", str(bundle), str(data), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil score: ") and "model hash mismatch" in lines[0]
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.slow
def test_converted_bundle_has_every_manifest_key_and_a_matching_model(tiny_bundle_3f: Path, tiny_run_3f: Path) -> None:
    from edge_agent.runtime import Scorer
    from trainer.rundir import read_run

    bundle = load_bundle(tiny_bundle_3f)
    run = read_run(tiny_run_3f)
    assert MANIFEST_KEYS <= set(bundle.manifest)
    m = bundle.manifest
    assert m["model"]["sha256"] == sha256_hex(bundle.model_bytes) and m["model"]["bytes"] == len(bundle.model_bytes)
    assert bundle.features == run.features and bundle.spec == run.spec
    assert bundle.threshold == run.threshold and m["threshold"]["strategy"] == run.meta["threshold"]["strategy"]
    assert bundle.scaler.to_dict() == run.scaler.to_dict()
    assert m["io"]["input"]["shape"] == [1, run.spec.window, 3] and m["io"]["input"]["dtype"] == "float32"
    assert m["quantization"]["mode"] == "float32" and "tensorflow" in m["versions"]
    assert m["conversion"]["parity"]["passed"] is True
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in m["ops"] and "WHILE" not in m["ops"]
    scorer = Scorer(bundle)
    window = run.train_rows()[: run.spec.window]
    assert scorer.score(window).feature_errors.shape == (3,)
