"""Comparing with the paper: its Tables 1-9 (paper.yaml), ours beside them, and the ablation studies
(Tables 6-9) this workspace's runs belong to. Builds report blocks; ``occo.report.render`` draws them."""
