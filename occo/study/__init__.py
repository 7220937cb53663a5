"""The paper's studies as one command each (``occo study``): queue a study's grid as DVC experiments, run them
one GPU each, show the study's table beside the paper's. The grids are ``occo/report/paper/studies.yaml``."""
