"""Shared contract checks (river ``checks/`` style): one suite every source kind and every sink passes.

``source_checks.SOURCE_CHECKS`` / ``sink_checks.SINK_CHECKS`` are plain functions
taking a *rig* (the thing under test plus the fake hardware or files that feed
it, built in ``source_rigs`` / ``sink_rigs``); ``test_*_contract.py`` run every
check against every rig that has what the check needs.
"""
