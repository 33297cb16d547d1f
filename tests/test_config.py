"""Agent config: one-line errors naming the key (exit 2), effective config with defaults."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent import launcher
from edge_agent.config import load_config, mqtt_settings, render_config
from edge_agent.config_schema import SCHEMA, SOURCE_SCHEMA, readme_with_key_tables
from edge_agent.errors import VigilInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware_configs"
BASE = """
[device]
id = "dev-1"

[bundle]
path = "{bundle}"

[source]
kind = "replay"
path = "data.csv"
pace = "fast"
"""


def write_data(folder: Path, columns: str = "f0,f1,f2", n_rows: int = 64) -> Path:
    rows = np.random.default_rng(0).normal(size=(n_rows, len(columns.split(","))))
    path = folder / "data.csv"
    np.savetxt(path, rows, delimiter=",", header=columns, comments="", fmt="%.5f")
    return path


def write_config(folder: Path, bundle: Path | str, extra: str = "", columns: str = "f0,f1,f2") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_data(folder, columns)
    path = folder / "agent.toml"
    path.write_text(BASE.format(bundle=bundle) + extra, encoding="utf-8")
    return path


def check_config(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = launcher.main(["check-config", str(path)], prog="vigil agent")
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(path: Path, key: str, *words: str) -> str:
    code, out, err = check_config(path)
    assert code == 2, (out, err)
    assert out == ""
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"key '{key}'" in line, line
    for word in words:
        assert word in line, line
    return line


# ----------------------------------------------------------------------------- errors without a bundle


@pytest.mark.parametrize(
    ("extra", "key", "word"),
    [
        ("[alerts]\nfoo = 1\n", "alerts.foo", "unknown key"),
        ("[alarms]\nk = 1\n", "alarms", "unknown section"),
        ('[alerts]\nk = "3"\n', "alerts.k", "integer"),
        ("[alerts]\nk = 2.5\n", "alerts.k", "integer"),
        ("[alerts]\nsensitivity = 0.0\n", "alerts.sensitivity", "out of range"),
        ("[alerts]\nk = 4\nn = 3\n", "alerts.k", "must not exceed"),
        ("[mqtt]\nhost = \"h\"\nport = 70000\n", "mqtt.port", "out of range"),
        ('[mqtt]\nprotocol = "4"\n', "mqtt.protocol", "3.1.1, 5"),
        ("[mqtt.tls]\nenabled = 1\n", "mqtt.tls.enabled", "true or false"),
        ("[mqtt.tls]\ncolor = 1\n", "mqtt.tls.color", "unknown key"),
        ('[mqtt]\nhost = "h"\npassword = "x"\n', "mqtt.username", "username"),
        ('[mqtt]\nhost = "h"\nusername = "u"\npassword_env = "VIGIL_TEST_UNSET_VAR"\n', "mqtt.password_env",
         "VIGIL_TEST_UNSET_VAR"),
        ('[mqtt]\nhost = "h"\nusername = "u"\npassword = "a"\npassword_env = "B"\n', "mqtt.password_env",
         "only one"),
        ('[mqtt.tls]\nca_file = "missing-ca.pem"\n', "mqtt.tls.ca_file", "not found"),
        ("[quality]\nvalid_range = [3.0, 1.0]\n", "quality.valid_range", "lo < hi"),
        ('[quality]\npolicy = "ignore"\n', "quality.policy", "skip, hold"),
        ("[health]\ninterval_s = -1\n", "health.interval_s", "out of range"),
        ('[device]\nid = "a/b"\n', "device.id", "'/'"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path: Path, extra: str, key: str, word: str) -> None:
    # The [device] table is declared in BASE already; a second one would be a TOML error.
    text = BASE.format(bundle="nope.vigil")
    if extra.startswith("[device]"):
        text = text.replace('[device]\nid = "dev-1"\n', "")
    folder = tmp_path / "cfg"
    folder.mkdir()
    write_data(folder)
    path = folder / "agent.toml"
    path.write_text(text + extra, encoding="utf-8")
    assert_one_line_error(path, key, word)


@pytest.mark.slow  # uses the converted tiny bundle
def test_source_errors_come_from_the_factory_with_the_key(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    path = write_config(tmp_path, tiny_bundle_3f, "")
    path.write_text(path.read_text().replace('pace = "fast"', 'pace = "fast"\nspeeed = 2.0'))
    assert_one_line_error(path, "source.speeed", "unknown key")


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[device\nid = 1\n")
    code, _, err = check_config(path)
    assert code == 2 and "not valid TOML" in err and err.strip().count("\n") == 0


# ----------------------------------------------------------------------------- bundle and features


def test_missing_bundle_names_bundle_path(tmp_path: Path) -> None:
    assert_one_line_error(write_config(tmp_path, "missing.vigil"), "bundle.path", "missing.vigil")


def test_damaged_bundle_names_bundle_path(tmp_path: Path) -> None:
    (tmp_path / "bad.vigil").write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line_error(write_config(tmp_path, "bad.vigil"), "bundle.path", "damaged")


@pytest.mark.slow  # uses the converted tiny bundle
def test_feature_names_must_match_the_bundle(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    path = write_config(tmp_path, tiny_bundle_3f, columns="f0,f2,f1")
    assert_one_line_error(path, "source", "'f2'", "'f1'")


@pytest.mark.slow  # uses the converted tiny bundle
def test_feature_count_must_match_the_bundle(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    path = write_config(tmp_path, tiny_bundle_3f, columns="f0,f1")
    assert_one_line_error(path, "source", "2 features")


@pytest.mark.slow  # uses the converted tiny bundle
def test_columns_option_selects_and_orders_features(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    path = write_config(tmp_path, tiny_bundle_3f, columns="extra,f2,f1,f0")
    text = path.read_text().replace('pace = "fast"', 'pace = "fast"\ncolumns = ["f0", "f1", "f2"]')
    path.write_text(text)
    assert load_config(path).bundle is not None
    path.write_text(text.replace('["f0", "f1", "f2"]', '["f0", "f2", "f1"]'))
    assert_one_line_error(path, "source.columns", "'f2'")


# ----------------------------------------------------------------------------- effective config


@pytest.mark.slow  # uses the converted tiny bundle
def test_check_config_prints_every_default_as_toml(tmp_path: Path, tiny_bundle_3f: Path) -> None:
    path = write_config(tmp_path, tiny_bundle_3f)
    code, out, err = check_config(path)
    assert code == 0, err
    printed = tomllib.loads(out)
    for section, keys in SCHEMA.items():
        table = printed["mqtt"]["tls"] if section == "mqtt.tls" else printed[section]
        for key, spec in keys.items():
            if spec.default is None or spec.kind == "path" or f"{section}.{key}" == "device.id":
                continue  # unset keys are printed as comments; paths are resolved; the id is set
            assert table[key] == spec.default, f"{section}.{key}"
    assert printed["bundle"]["path"] == str(tiny_bundle_3f.resolve())
    assert printed["source"]["block_rows"] == 256  # the factory's default, filled in
    assert printed["spool"]["path"].endswith("spool.db")
    assert "model " in out and "features f0, f1, f2" in out


@pytest.mark.slow  # uses the converted tiny bundle
def test_relative_paths_resolve_against_the_config_dir(tmp_path: Path, tiny_bundle_3f: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "profiles"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "m.vigil").write_bytes(tiny_bundle_3f.read_bytes())
    path = write_config(folder, "models/m.vigil", '[sinks]\njsonl = "out/alerts.jsonl"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    cfg = load_config(path)
    assert cfg.get("bundle.path") == folder / "models" / "m.vigil"
    assert cfg.get("sinks.jsonl") == folder / "out" / "alerts.jsonl"
    assert cfg.get("spool.path") == folder / "vigil-state" / "spool.db"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert load_config(path).get("spool.path") == tmp_path / "state" / "spool.db"


def test_secrets_from_env_and_file_are_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw.txt").write_text("file-secret\nignored\n")
    monkeypatch.setenv("VIGIL_TEST_PW", "env-secret")
    path = write_config(tmp_path, "x.vigil", '[mqtt]\nhost = "broker"\nusername = "u"\npassword_env = "VIGIL_TEST_PW"\n'
                        '[mqtt.tls]\nkey_password = "plain"\ninsecure = true\n')
    cfg = load_config(path, check_bundle=False)
    settings = mqtt_settings(cfg)
    assert settings.password == "env-secret" and settings.tls is not None and settings.resolved_port == 8883
    assert settings.prefix_for(cfg.device_id) == "vigil/dev-1"
    assert "plain" not in render_config(cfg) and 'key_password = "***"' in render_config(cfg)
    path.write_text(path.read_text().replace('password_env = "VIGIL_TEST_PW"', 'password_file = "pw.txt"'))
    assert mqtt_settings(load_config(path, check_bundle=False)).password == "file-secret"


def test_errors_carry_the_key_for_callers() -> None:
    with pytest.raises(VigilInputError) as info:
        load_config(FIRMWARE / "does-not-exist.toml")
    assert "not found" in str(info.value)


# ----------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("profile", sorted((FIRMWARE / "profiles").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_profiles_are_valid(profile: Path) -> None:
    # Bundles, secrets and certificates exist only on a device.
    cfg = load_config(profile, check_bundle=False, check_files=False)
    assert cfg.device_id and cfg.source.kind in SOURCE_SCHEMA


def test_readme_key_tables_are_the_generated_ones() -> None:
    readme = (FIRMWARE / "README.md").read_text(encoding="utf-8")
    assert readme_with_key_tables(readme) == readme, (
        "firmware_configs/README.md is out of date; run: python -c \"import edge_agent.config_schema as s; "
        "s.write_key_tables('firmware_configs/README.md')\"")
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines() if line.startswith("| `")}
    assert {f"{section}.{key}" for section, keys in SCHEMA.items() for key in keys} <= rows
    assert {f"source.{key}" for keys in SOURCE_SCHEMA.values() for key in keys} <= rows


def test_wrong_key_passphrase_is_caught_by_check_config(tmp_path: Path) -> None:
    from tests.broker import make_tls_files

    tls = make_tls_files(tmp_path / "tls")
    encrypted = tmp_path / "client-enc.key"
    subprocess.run(["openssl", "pkey", "-in", str(tls.client_key), "-aes256", "-passout", "pass:right",
                    "-out", str(encrypted)], check=True, capture_output=True)
    (tmp_path / "keypass").write_text("wrong\n")
    extra = (f'[mqtt]\nhost = "127.0.0.1"\n[mqtt.tls]\nca_file = "{tls.ca_cert}"\ncert_file = "{tls.client_cert}"\n'
             f'key_file = "{encrypted}"\nkey_password_file = "keypass"\n')
    path = write_config(tmp_path, "x.vigil", extra)
    with pytest.raises(VigilInputError) as info:
        load_config(path, check_bundle=False)
    assert info.value.key == "mqtt.tls.cert_file" and "key_password" in str(info.value)
    (tmp_path / "keypass").write_text("right\n")
    assert mqtt_settings(load_config(path, check_bundle=False)).tls.key_password == "right"


@pytest.mark.parametrize("body, needle", [
    ("[mqtt]\nhost = 'b'\ntopic_prefix = '" + "t" * 70_000 + "'\n", "mqtt.topic_prefix"),
    ("[mqtt]\nhost = 'b'\nusername = '" + "u" * 70_000 + "'\n", "mqtt.username"),
    ("[device]\nid = " + "9" * 5000 + "\n", "not a usable TOML value"),
    ("[device]\nid = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    ("[source]\nkind = [1]\n", "source.kind"),  # found by the chaos fuzzer: a list is not a kind
])
def test_hostile_config_text_is_one_line_exit_2(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(body, encoding="utf-8")
    code, out, err = check_config(path)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
