"""``vigil convert --sign-key``: a real conversion whose bundle comes out signed (issue 11, defect 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.errors import VigilInputError


def _cli(args: list[str]):  # type: ignore[no-untyped-def]
    from vigil.cli import app

    return CliRunner().invoke(app, args)


def test_convert_with_a_missing_key_is_one_line_before_any_conversion(tmp_path: Path) -> None:
    # The run does not exist either: the key is what is read first, so a typo costs no conversion.
    result = _cli(["convert", str(tmp_path / "no-run"), "--out", str(tmp_path / "x.vigil"),
                   "--sign-key", str(tmp_path / "no.key")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil convert: ") and "cannot read key file" in lines[0]
    assert not (tmp_path / "x.vigil").exists()


@pytest.mark.slow  # one real float32 conversion of the tiny run
def test_convert_sign_key_writes_a_bundle_the_device_accepts_with_that_key_only(
        tiny_run_3f: Path, tmp_path: Path) -> None:
    from edge_agent.bundle import load_bundle
    from edge_agent.signing import new_signing_key, write_key_file

    key, stranger = new_signing_key(), new_signing_key()
    write_key_file(tmp_path / "release.key", key)
    out = tmp_path / "signed.vigil"
    result = _cli(["convert", str(tiny_run_3f), "--out", str(out), "--quantize", "float32",
                   "--sign-key", str(tmp_path / "release.key")])
    assert result.exit_code == 0, result.output
    assert f"signed {out} with key " in result.output
    bundle = load_bundle(out, trusted_keys=[key.public_key])
    assert bundle.signature is not None
    with pytest.raises(VigilInputError, match="not in trusted_keys"):
        load_bundle(out, trusted_keys=[stranger.public_key])


def test_signing_cost_benchmark_runs_and_pynacl_stays_unloaded_without_keys() -> None:
    from benchmarks.chaos_signing import measure, render

    data = measure(rounds=1)
    assert set(data["contenders"]) >= {"no keys", "PyNaCl"}
    assert not any(c["nacl_loaded_before_bundle"] for c in data["contenders"].values())
    assert data["contenders"]["PyNaCl"]["verify_ms_median"] > 0
    assert "| PyNaCl |" in render(data)


def test_config_refusing_a_foreign_signature_names_the_key_once(tmp_path: Path) -> None:
    from benchmarks.chaos_fuzz import MODEL, base_manifest
    from edge_agent.bundle import pack_bundle, sign_bundle
    from edge_agent.config import load_config
    from edge_agent.signing import new_signing_key

    trusted, stranger = new_signing_key(), new_signing_key()
    (tmp_path / "b.vigil").write_bytes(sign_bundle(pack_bundle(base_manifest(), MODEL), stranger))
    (tmp_path / "agent.toml").write_text(f'[device]\nid = "d"\n[bundle]\npath = "b.vigil"\n'
                                         f'trusted_keys = ["{trusted.public_key}"]\n[source]\nkind = "stdin"\n')
    with pytest.raises(VigilInputError) as info:
        load_config(tmp_path / "agent.toml", check_source=False, check_files=False)
    message = str(info.value)
    assert message.count("bundle.trusted_keys") == 1 and "which is not in trusted_keys" in message
    assert str(tmp_path / "b.vigil") in message and "\n" not in message
