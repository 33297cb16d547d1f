"""vigil-edge light core: what runs on the device.

Only numpy, an interpreter (ai-edge-litert / tflite-runtime) and paho-mqtt are
allowed here. The trainer and converter import the numeric core from
``edge_agent.core`` so the workstation and the device compute the same numbers.
"""

__version__ = "0.1.0"
