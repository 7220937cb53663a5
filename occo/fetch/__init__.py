"""Fetching: the registry of datasets and weights, verified downloads, archives, dataset import, pretrained weights."""
