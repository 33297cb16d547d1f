"""Where samples enter: one :class:`~edge_agent.sources.base.Source` per sensor kind.

Build sources with :func:`make_source` from the agent TOML's ``[source]`` table;
``SOURCE_DEFAULTS`` / ``SOURCE_REQUIRED`` / ``SOURCE_HELP`` describe its keys per kind.
Modules: ``replay`` (files), ``stdin`` and ``serial_line`` (text lines),
``i2c_adxl345`` and ``i2c_mpu6050`` (accelerometers over smbus2, shared code in
``i2c_base``), ``synthetic`` (vibration generator). Bad samples are handled
after the source by :mod:`edge_agent.quality`.
"""

from edge_agent.sources.base import SampleBlock, Source, SourceStats
from edge_agent.sources.factory import (
    KINDS,
    SOURCE_DEFAULTS,
    SOURCE_HELP,
    SOURCE_REQUIRED,
    effective_source_section,
    make_source,
)

__all__ = ["KINDS", "SOURCE_DEFAULTS", "SOURCE_HELP", "SOURCE_REQUIRED", "SampleBlock", "Source", "SourceStats",
           "effective_source_section", "make_source"]
