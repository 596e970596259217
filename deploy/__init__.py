"""Turning trained weights into deployable artefacts: ONNX (checked against torch with
onnxruntime), TensorRT engines (optional extra `tensorrt`), TensorRTx `.wts` text weights, and
inference helpers for them. Entry points: `deploy.export.export_weights` / `check_parity`, and
`evolver export` (deploy.export_cli)."""
