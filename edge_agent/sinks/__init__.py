"""Where alerts leave: MQTT (with its spool), a JSONL file, or stdout."""
