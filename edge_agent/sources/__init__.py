"""Where samples enter: one :class:`~edge_agent.sources.base.Source` per sensor kind.

Build sources with :func:`make_source` from the typed ``[source]`` options (or a
raw table); the keys of every kind are in :data:`edge_agent.config_schema.SOURCE_SCHEMA`.
Modules: ``replay`` (files), ``stdin`` and ``serial_line`` (text lines),
``i2c_adxl345`` and ``i2c_mpu6050`` (accelerometers over smbus2, shared code in
``i2c_base``), ``synthetic`` (vibration generator). Bad samples are handled
after the source by :mod:`edge_agent.quality`.
"""

from edge_agent.sources.base import SampleBlock, Source, SourceStats
from edge_agent.sources.factory import KINDS, make_source, parse_source_options

__all__ = ["KINDS", "SampleBlock", "Source", "SourceStats", "make_source", "parse_source_options"]
