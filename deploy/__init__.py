"""Export of trained detectors to ONNX and TensorRT (see DESIGN.md; built by a later issue)."""
