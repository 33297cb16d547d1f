"""Signed bundle rollout with probation and rollback, and remote ``[alerts]`` policy, over MQTT.

- :mod:`.protocol`: topics, the command envelope, replies (shared with ``vigil deploy`` / ``vigil policy``).
- :mod:`.channel`: the agent's persistent-session command connection.
- :mod:`.controller`: verify, stage, swap, probation, active / rolled_back / refused; remote policy.
- :mod:`.probation`: the bounds a new bundle must keep, derived from its training statistics.
- :mod:`.store`: the state file and deployed bundles beside the spool (atomic writes).
- :mod:`.policy`: remote ``[alerts]`` values through the config schema.
"""
