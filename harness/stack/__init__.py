"""The local reference stack: N reference-server replicas on loopback, nginx in front when N > 1.

from harness.stack import LocalStack
with LocalStack(replicas=3) as stack:
    stack.url        # http://127.0.0.1:PORT  (nginx, or the single replica)
    stack.grpc_url   # 127.0.0.1:PORT
"""

from harness.stack.local import LocalStack, StackState
from harness.stack.server_process import ServerProcess

__all__ = ["LocalStack", "ServerProcess", "StackState"]
