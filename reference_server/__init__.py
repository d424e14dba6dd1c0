"""Reference serving stack: KServe v2 (HTTP + gRPC) and TF-Serving REST over ONNX Runtime.

Never imports `harness`: the server stands on its own so it can ship as a container image.
"""

__version__ = "0.1.0"
SERVER_NAME = "serving-harness-reference"
