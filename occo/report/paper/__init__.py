"""Comparing with the paper: its Tables 1-9 (paper.yaml), ours beside them, the studies of Tables 6-9."""
