"""The one config schema: typed sections equal the key table, one validator for every caller."""

from __future__ import annotations

import ast
import base64
import dataclasses
import json
from pathlib import Path

import pytest

from edge_agent import config_schema
from edge_agent.config import load_config, render_config
from edge_agent.config_schema import SCHEMA, SOURCE_SCHEMA
from edge_agent.config_sections import (
    SECTION_CLASSES,
    SOURCE_OPTION_CLASSES,
    QualitySection,
    ReplayOptions,
    build_section,
)
from edge_agent.config_values import parse_table
from edge_agent.errors import VigilInputError
from edge_agent.mqtt import constants
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.sources import i2c_adxl345, i2c_mpu6050
from tests.test_config import write_config

REPO = Path(__file__).resolve().parents[1]
KEY = "ed25519:" + base64.b64encode(bytes(range(32))).decode()


def load(tmp_path: Path, extra: str = "", **kw):
    return load_config(write_config(tmp_path, "x.vigil", extra), check_bundle=False, **kw)


def load_with_keys(tmp_path: Path, entries: str):
    path = write_config(tmp_path, "x.vigil")
    path.write_text(path.read_text().replace('path = "x.vigil"', f'path = "x.vigil"\ntrusted_keys = [{entries}]'))
    return load_config(path, check_bundle=False)


# ----------------------------------------------------------------------------- schema <-> typed sections


@pytest.mark.parametrize("section", sorted(SCHEMA))
def test_typed_section_fields_are_the_schema_keys(section: str) -> None:
    names = [f.name for f in dataclasses.fields(SECTION_CLASSES[section]) if f.name != "tls"]
    assert names == list(SCHEMA[section])
    assert dataclasses.is_dataclass(SECTION_CLASSES[section])
    assert SECTION_CLASSES[section].__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", sorted(SOURCE_SCHEMA))
def test_source_option_fields_are_the_schema_keys(kind: str) -> None:
    names = [f.name for f in dataclasses.fields(SOURCE_OPTION_CLASSES[kind])]
    assert names == ["kind", *SOURCE_SCHEMA[kind]]


def test_schema_defaults_agree_with_the_drivers_and_the_mqtt_constants() -> None:
    assert config_schema.ADXL345_RATES == i2c_adxl345.SUPPORTED_RATES
    assert SOURCE_SCHEMA["adxl345"]["address"].default == i2c_adxl345.DEFAULT_ADDRESS
    assert SOURCE_SCHEMA["mpu6050"]["address"].default == i2c_mpu6050.DEFAULT_ADDRESS
    mqtt = SCHEMA["mqtt"]
    plain = MqttSettings(host="h")
    for key in ("protocol", "keepalive", "topic_prefix", "reconnect_min_s", "reconnect_max_s", "connect_timeout_s"):
        assert getattr(plain, key) == mqtt[key].default, key
    assert mqtt["protocol"].choices == constants.PROTOCOLS


def test_config_modules_import_in_one_direction() -> None:
    """schema <- values <- sections <- config: no module imports one that imports it back."""
    order = ["config_schema", "config_values", "config_sections", "config_runtime", "config"]
    for i, name in enumerate(order):
        tree = ast.parse((REPO / "edge_agent" / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        later = {f"edge_agent.{n}" for n in order[i:]}
        assert not imported & later, (name, imported & later)


# ----------------------------------------------------------------------------- typed values


def test_typed_sections_with_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[mqtt]\nhost = "broker"\nprotocol = 5\n[mqtt.tls]\nca_file = "ca.pem"\n', check_files=False)
    assert cfg.device.id == "dev-1" and cfg.bundle_section.path == tmp_path / "x.vigil"
    assert cfg.alerts.k is None and cfg.alerts.n is None and cfg.alerts.smoothing is None
    assert cfg.alerts.dynamic_threshold and cfg.alerts.sensor_faults and cfg.bundle_section.trusted_keys == ()
    assert cfg.mqtt.host == "broker" and cfg.mqtt.protocol == "5" and cfg.mqtt.tls.ca_file == tmp_path / "ca.pem"
    assert cfg.mqtt.tls.active and cfg.quality == QualitySection("skip", None)
    assert isinstance(cfg.source, ReplayOptions) and cfg.source.path == tmp_path / "data.csv"
    assert cfg.source.pace == "fast" and cfg.source.columns == ()
    # The read-only compatibility view holds the same values.
    assert cfg.values["alerts"]["k"] is None and cfg.values["mqtt.tls"]["ca_file"] == tmp_path / "ca.pem"
    assert cfg.values["source"]["kind"] == "replay" == cfg.source.kind
    with pytest.raises(TypeError):
        cfg.values["alerts"]["k"] = 3  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.alerts.k = 3  # type: ignore[misc]


def test_alert_policy_keys_override_the_bundle_only_when_set(tmp_path: Path) -> None:
    cfg = load(tmp_path, "[alerts]\nk = 2\nn = 4\nm = 9\ncooldown = 0\nsmoothing = 1.0\ndynamic_threshold = false\n")
    assert (cfg.alerts.k, cfg.alerts.n, cfg.alerts.m, cfg.alerts.cooldown) == (2, 4, 9, 0)
    assert cfg.alerts.smoothing == 1.0 and cfg.alerts.dynamic_threshold is False
    for extra, key in [("[alerts]\nk = 2\n", "alerts.n"), ("[alerts]\nn = 2\n", "alerts.k"),
                       ("[alerts]\nsmoothing = 0.0\n", "alerts.smoothing"),
                       ("[alerts]\nsensor_faults = 1\n", "alerts.sensor_faults")]:
        with pytest.raises(VigilInputError) as err:
            load(tmp_path, extra)
        assert err.value.key == key and "\n" not in str(err.value), extra


def test_quality_table_is_validated_by_the_schema() -> None:
    values = parse_table({"policy": "hold", "valid_range": [-16, 16]}, SCHEMA["quality"], "quality")
    assert build_section("quality", values) == QualitySection("hold", (-16.0, 16.0))
    assert build_section("quality", parse_table({}, SCHEMA["quality"], "quality")) == QualitySection("skip", None)
    for table, key in [({"polcy": "skip"}, "quality.polcy"), ({"policy": "repair"}, "quality.policy"),
                       ({"valid_range": [5, 1]}, "quality.valid_range"), ({"valid_range": [1]}, "quality.valid_range"),
                       ({"valid_range": "0:1"}, "quality.valid_range")]:
        with pytest.raises(VigilInputError) as err:
            parse_table(table, SCHEMA["quality"], "quality")
        assert err.value.key == key and "\n" not in str(err.value)


def test_trusted_keys_inline_bare_base64_and_files(tmp_path: Path) -> None:
    bare = KEY.removeprefix("ed25519:")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "plant.pub").write_text(KEY + "\n")
    (tmp_path / "keys" / "signer.json").write_text(json.dumps({"public_key": KEY}))
    cfg = load_with_keys(tmp_path, f'"{KEY}", "{bare}", "keys/plant.pub", "keys/signer.json"')
    assert cfg.bundle_section.trusted_keys[:2] == (KEY, KEY)
    assert cfg.bundle_section.trusted_keys[2] == tmp_path / "keys" / "plant.pub"
    assert cfg.bundle_section.public_keys() == (KEY,) * 4


@pytest.mark.parametrize(("entry", "key", "word"), [
    ('"ed25519:AAAA"', "bundle.trusted_keys[0]", "32 bytes"),
    ("3", "bundle.trusted_keys[0]", "public key"),
    ('"missing.pub"', "bundle.trusted_keys[0]", "missing.pub"),
    ('"private.json"', "bundle.trusted_keys[0]", "private key"),
])
def test_bad_trusted_keys_are_one_line(tmp_path: Path, entry: str, key: str, word: str) -> None:
    (tmp_path / "private.json").write_text(json.dumps({"private_key": "c2VjcmV0", "public_key": KEY}))
    with pytest.raises(VigilInputError) as err:
        load_with_keys(tmp_path, entry)
    assert err.value.key == key and word in str(err.value) and "\n" not in str(err.value)


def test_effective_config_masks_secrets_and_comments_unset_keys(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[mqtt]\nhost = "b"\nusername = "u"\npassword = "hunter2"\n')
    text = render_config(cfg)
    assert 'password = "***"' in text and "hunter2" not in text and "hunter2" not in repr(cfg)
    assert "# k = (unset: the bundle's recommended policy)" in text and "# port = (unset: 1883" in text
    assert "trusted_keys = []" in text


def test_mqtt_settings_from_a_table_use_the_schema_rules() -> None:
    settings = MqttSettings.from_dict({"host": "b", "protocol": 5, "tls": True})
    assert settings.protocol == "5" and settings.resolved_port == 8883
    for table, key, word in [({"host": "b", "keepalive": 1}, "mqtt.keepalive", "out of range"),
                             ({"host": "b", "topic_prefix": "a/#"}, "mqtt.topic_prefix", "'#'"),
                             ({"host": "b", "password": "p"}, "mqtt.username", "username"),
                             ({"host": "b", "protocol": "4"}, "mqtt.protocol", "3.1.1, 5")]:
        with pytest.raises(VigilInputError) as err:
            MqttSettings.from_dict(table)
        assert err.value.key == key and word in str(err.value), table
    with pytest.raises(VigilInputError) as err:
        MqttSettings(host="b", keepalive=1)
    assert err.value.key == "mqtt.keepalive" and "out of range" in str(err.value)
