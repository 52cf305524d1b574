"""The multi-node topology (tests/multinode/topology.py) and what must hold across its nodes."""
