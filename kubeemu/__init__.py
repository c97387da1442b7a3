"""kubeemu: an emulated Kubernetes API server for tests and demos (not part of the reconciler).

    from kubeemu import EmulatorServer
    with EmulatorServer() as cp:
        cp.write_kubeconfig("kubeconfig")
"""

from kubeemu.process import EmulatorProcess, EmulatorServer, kubeconfig

__all__ = ["EmulatorProcess", "EmulatorServer", "kubeconfig"]
