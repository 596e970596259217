"""Evolver: YOLOv5's genetic hyperparameter evolution; today it hosts the `evolver` CLI."""
