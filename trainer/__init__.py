"""Workstation side: fit the LSTM autoencoder on normal data, evaluate, report.

Imports the numeric core from ``edge_agent.core`` (never the other way round).
"""
