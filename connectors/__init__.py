"""Connectors between the twin and the outside world (OPC-UA, USD, ...); each lives in its own subpackage."""
