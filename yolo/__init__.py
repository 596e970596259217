"""A YOLOv5-class object detector: model, data, loss, training and validation."""
