"""Connectors between the twin and the outside world: OPC-UA and USD."""
