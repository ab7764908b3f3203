"""Argus stream stages (Faust). One module per stage; ``pipelines.app`` wires them."""
