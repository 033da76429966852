"""Export and quantization: ONNX, TFLite, Core ML variants, each validated."""
