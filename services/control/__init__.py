"""The control plane: registry and lifecycle of encoder versions (``ControlService``)."""
