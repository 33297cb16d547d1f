"""The .vigil bundle: layout, verification on load, one-line refusals."""

from __future__ import annotations

import hashlib
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


# -- defect 6: every manifest field checked by type and range --------------------------


def _with(path: str, value: object) -> dict:
    """The test manifest with one dotted key set to ``value``."""
    manifest = _manifest(MODEL)
    *parents, last = path.split(".")
    node = manifest
    for name in parents:
        node = node[name]
    node[last] = value
    return manifest


NONSENSE = [
    ("scaler.offset", [float("nan"), 1.0], "scaler.offset[0]"),
    ("scaler.scale", [1e-40, 1.0], "scaler.scale[0]"),
    ("threshold.value", 0.0, "threshold.value"),
    ("threshold.value", -0.5, "threshold.value"),
    ("threshold.value", 1e308, "threshold.value"),
    ("threshold.value", "0.25", "threshold.value"),
    ("hop", 10**9, "hop"),
    ("hop", 9, "hop"),  # hop > window: samples would never be scored
    ("window", 8.0, "window"),
    ("window", True, "window"),
    ("smoothing", [1], "smoothing"),
    ("smoothing.alpha", 1.5, "smoothing.alpha"),
    ("score.weights", "1,3", "score.weights"),
    ("score.weights", [1.0, float("inf")], "score.weights[1]"),
    ("score.function", "rmse", "score.function"),
    ("score.function", ["mse"], "score.function"),  # unhashable: found by benchmarks/chaos.py's fuzzer
    ("scaler.kind", {"minmax": 1}, "scaler.kind"),
    ("features", "a,b", "features"),
    ("features", ["a", "a"], "features"),
    ("model_id", 12, "model_id"),
    ("sampling_rate_hz", -50.0, "sampling_rate_hz"),
    ("io.input.shape", ["1", 8, 2], "io.input.shape"),
    ("quantization", "float32", "quantization"),
]


@pytest.mark.parametrize(("path", "value", "key"), NONSENSE, ids=[f"{p}={v!r}"[:40] for p, v, _ in NONSENSE])
def test_nonsense_manifest_values_are_refused_with_the_key(path: str, value: object, key: str, tmp_path: Path) -> None:
    message = _refusal(pack_bundle(_with(path, value), MODEL), tmp_path)
    assert f"key '{key}'" in message and "invalid manifest" in message


def _manifest_text_bundle(text: str) -> bytes:
    """A bundle whose manifest.json is ``text`` verbatim, with every hash right."""
    raw = text.encode()
    return _zip({FORMAT_ENTRY: b"vigil-bundle/1\n", MANIFEST_ENTRY: raw,
                 MANIFEST_HASH_ENTRY: sha256_hex(raw).encode() + b"\n", MODEL_ENTRY: MODEL})


def test_infinity_in_an_int_field_and_a_5000_digit_integer_are_one_line(tmp_path: Path) -> None:
    base = json.dumps(_manifest(MODEL))
    infinite = base.replace('"window": 8', '"window": Infinity')
    assert "key 'window'" in _refusal(_manifest_text_bundle(infinite), tmp_path)
    huge = base.replace('"window": 8', '"window": ' + "9" * 5000)
    assert "integer with 5000 digits" in _refusal(_manifest_text_bundle(huge), tmp_path)
    huge_elsewhere = base.replace('"created": ', '"seed": ' + "7" * 5000 + ', "created": ')
    assert "integer with 5000 digits" in _refusal(_manifest_text_bundle(huge_elsewhere), tmp_path)


def test_100000_deep_json_is_refused_before_parsing(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps(_manifest(MODEL)).replace('"created": ', f'"conversion": {deep}, "created": ')
    assert "nests 100001 levels deep" in _refusal(_manifest_text_bundle(text), tmp_path)
    # Brackets inside strings are text, not nesting.
    quoted = _manifest(MODEL, model_id="[[[[" * 20)
    assert parse_bundle(pack_bundle(quoted, MODEL)).model_id == "[[[[" * 20


# -- defect 7: entries refused from the zip directory, before anything is inflated --------


def _zip_bomb(path: Path, padding_mb: int) -> None:
    """A bundle whose deflated manifest.json inflates to ``padding_mb`` MB of JSON whitespace (hash right)."""
    text = json.dumps(_manifest(MODEL)).encode()
    chunk = b" " * (1 << 20)
    digest = hashlib.sha256(text)
    for _ in range(padding_mb):
        digest.update(chunk)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(FORMAT_ENTRY, b"vigil-bundle/1\n")
        info = zipfile.ZipInfo(MANIFEST_ENTRY)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as entry:
            entry.write(text)
            for _ in range(padding_mb):
                entry.write(chunk)
        archive.writestr(MANIFEST_HASH_ENTRY, digest.hexdigest() + "\n")
        archive.writestr(MODEL_ENTRY, MODEL)


def test_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    import tracemalloc

    bomb = tmp_path / "bomb.vigil"
    _zip_bomb(bomb, padding_mb=100)
    assert bomb.stat().st_size < 400_000  # 100 MB of manifest in a few hundred KB
    tracemalloc.start()
    try:
        with pytest.raises(VigilInputError) as info:
            load_bundle(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "entry manifest.json is compressed" in str(info.value) and "\n" not in str(info.value)
    assert peak < 8 << 20, f"loading the bomb allocated {peak} bytes"


def test_stored_entry_over_its_limit_is_refused_from_the_directory(tmp_path: Path) -> None:
    from edge_agent.bundle import ENTRY_LIMITS

    entries = _entries(pack_bundle(_manifest(MODEL), MODEL))
    entries[MANIFEST_HASH_ENTRY] = entries[MANIFEST_HASH_ENTRY] + b" " * ENTRY_LIMITS[MANIFEST_HASH_ENTRY]
    assert "entry manifest.sha256 declares" in _refusal(_zip(entries), tmp_path)


# -- defect 6: signed bundles (ed25519, PyNaCl) ------------------------------------------------


def _signed(key: object, manifest: dict | None = None) -> bytes:
    from edge_agent.bundle import sign_bundle

    return sign_bundle(pack_bundle(manifest or _manifest(MODEL), MODEL), key)  # type: ignore[arg-type]


def test_signed_bundle_verifies_and_tampering_with_hashes_recomputed_is_refused(tmp_path: Path) -> None:
    from edge_agent.bundle import SIGNATURE_ENTRY, SIGNED_LAYOUT, verify_bundle_signature
    from edge_agent.signing import new_signing_key

    key = new_signing_key()
    data = _signed(key)
    assert tuple(_entries(data)) == SIGNED_LAYOUT
    path = tmp_path / "signed.vigil"
    path.write_bytes(data)
    bundle = load_bundle(path, trusted_keys=[key.public_key])
    assert bundle.threshold == 0.25 and bundle.signature is not None
    assert verify_bundle_signature(data, [key.public_key]) == key.public_key

    # The forger multiplies the threshold by 1000 and recomputes both hashes, keeping the signature.
    entries = _entries(data)
    manifest = json.loads(entries[MANIFEST_ENTRY])
    manifest["threshold"]["value"] *= 1000
    entries[MANIFEST_ENTRY] = json.dumps(manifest).encode()
    entries[MANIFEST_HASH_ENTRY] = sha256_hex(entries[MANIFEST_ENTRY]).encode()
    forged = tmp_path / "forged.vigil"
    forged.write_bytes(_zip(entries))
    assert load_bundle(forged).threshold == 250.0  # intact, so the hashes alone accept it
    with pytest.raises(VigilInputError) as info:
        load_bundle(forged, trusted_keys=[key.public_key])
    assert "signature does not match" in str(info.value) and str(forged) in str(info.value)
    assert "\n" not in str(info.value) and SIGNATURE_ENTRY in _entries(forged.read_bytes())


def test_unsigned_or_foreign_signed_bundle_refused_only_when_keys_are_trusted(tmp_path: Path) -> None:
    from edge_agent.bundle import verify_bundle_signature
    from edge_agent.signing import key_id, new_signing_key

    trusted, stranger = new_signing_key(), new_signing_key()
    unsigned = pack_bundle(_manifest(MODEL), MODEL)
    assert verify_bundle_signature(unsigned, []) is None and verify_bundle_signature(unsigned, None) is None
    with pytest.raises(VigilInputError, match="bundle is not signed"):
        verify_bundle_signature(unsigned, [trusted.public_key])
    with pytest.raises(VigilInputError) as info:
        verify_bundle_signature(_signed(stranger), [trusted.public_key])
    assert f"signed by key {key_id(stranger.public_key)}, which is not in trusted_keys" in str(info.value)
    assert verify_bundle_signature(_signed(stranger), [trusted.public_key, stranger.public_key])
    with pytest.raises(VigilInputError) as info:
        verify_bundle_signature(unsigned, ["ssh-ed25519 AAAA"])
    assert "trusted_keys[0]" in str(info.value) and "not an ed25519 public key" in str(info.value)
    entries = _entries(_signed(trusted))
    entries["signature.json"] = b"{not json"
    with pytest.raises(VigilInputError, match="signature entry is not JSON"):
        verify_bundle_signature(_zip(entries), [trusted.public_key])


def test_key_file_is_private_and_round_trips(tmp_path: Path) -> None:
    from edge_agent.signing import new_signing_key, read_key_file, write_key_file

    key = new_signing_key()
    path = write_key_file(tmp_path / "release.key", key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_key_file(path) == key
    assert (tmp_path / "release.key.pub").read_text().strip() == key.public_key
    with pytest.raises(VigilInputError, match="exists already"):
        write_key_file(path, new_signing_key())
    (tmp_path / "junk.key").write_text("[1, 2")
    with pytest.raises(VigilInputError, match="not a vigil key file"):
        read_key_file(tmp_path / "junk.key")


def test_cli_keys_new_then_sign_then_the_device_accepts_it(tmp_path: Path) -> None:
    from vigil.cli import app

    runner = CliRunner()
    made = runner.invoke(app, ["keys", "new", str(tmp_path / "k.key")])
    assert made.exit_code == 0, made.output
    public = (tmp_path / "k.key.pub").read_text().strip()
    assert f'trusted_keys = ["{public}"]' in made.output
    bundle = tmp_path / "m.vigil"
    bundle.write_bytes(pack_bundle(_manifest(MODEL), MODEL))
    with pytest.raises(VigilInputError, match="not signed"):
        load_bundle(bundle, trusted_keys=[public])
    signed = runner.invoke(app, ["sign", str(bundle), "--key", str(tmp_path / "k.key")])
    assert signed.exit_code == 0, signed.output
    assert load_bundle(bundle, trusted_keys=[public]).signature is not None

    tampered = tmp_path / "t.vigil"
    tampered.write_bytes(pack_bundle(_manifest(MODEL), bytes(reversed(MODEL))))
    refused = runner.invoke(app, ["sign", str(tampered), "--key", str(tmp_path / "k.key")])
    assert refused.exit_code == 2
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil sign: ") and "model hash mismatch" in lines[0]


@pytest.mark.slow
def test_real_converted_bundle_signed_still_scores(tiny_bundle_3f: Path, tmp_path: Path) -> None:
    from edge_agent.bundle import sign_bundle
    from edge_agent.runtime import Scorer
    from edge_agent.signing import new_signing_key

    key = new_signing_key()
    path = tmp_path / "signed.vigil"
    path.write_bytes(sign_bundle(tiny_bundle_3f.read_bytes(), key))
    bundle = load_bundle(path, trusted_keys=[key.public_key])
    assert bundle.manifest_bytes == _entries(tiny_bundle_3f.read_bytes())[MANIFEST_ENTRY]
    Scorer(bundle)


@pytest.mark.parametrize("flag", [0x01, 0x20], ids=["encrypted", "compressed-patched"])
def test_hostile_zip_header_flags_are_a_damaged_bundle(flag: int, tmp_path: Path) -> None:
    # Found by the chaos fuzzer: zipfile raises RuntimeError / NotImplementedError on these bits.
    data = bytearray(pack_bundle(_manifest(MODEL), MODEL))
    central = data.index(b"PK\x01\x02")  # the first entry's central directory record
    data[central + 8] |= flag
    assert "truncated or damaged bundle" in _refusal(bytes(data), tmp_path)
