"""Triton Python-backend model that serves one exported hearby encoder version.

This file is copied, unchanged, into every version of the model repository as
``<version>/1/model.py`` (see ``model_repository.py``); Triton imports it in its own stub
process, so it depends only on numpy, torch and ``triton_python_backend_utils``.

Input ``audio``: float32 [batch, window_samples] mono waveform windows at the version's
sample rate. Output ``embedding``: float32 [batch, dimension], L2-normalised. The log-mel
front end is inside the TorchScript module, so serving computes exactly what training did.
"""

import json
import os

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Loads ``model.pt`` (TorchScript) and runs batched inference."""

    def initialize(self, args):
        """Loads the TorchScript module on this instance's GPU, or the CPU."""
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        wanted = params.get("device", "auto")
        if args.get("model_instance_kind") == "GPU":
            # KIND_AUTO resolved to GPU: Triton gives each instance its device.
            self.device = torch.device("cuda", int(args["model_instance_device_id"]))
        else:
            # A CPU instance may still use CUDA (a Triton build without GPU support on a
            # CUDA host) unless the config pins the CPU.
            use_cuda = wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available())
            self.device = torch.device("cuda" if use_cuda else "cpu")
        # Several instances share the CPU: one intra-op thread each avoids oversubscription.
        torch.set_num_threads(int(params.get("cpu_threads", "1")))
        path = os.path.join(args["model_repository"], args["model_version"], "model.pt")
        self.model = torch.jit.load(path, map_location=self.device).eval()

    def execute(self, requests):
        """Runs every request the dynamic batcher grouped in one forward pass."""
        arrays = [pb_utils.get_input_tensor_by_name(r, "audio").as_numpy() for r in requests]
        sizes = [a.shape[0] for a in arrays]
        batch = torch.from_numpy(np.ascontiguousarray(np.concatenate(arrays))).to(self.device)
        with torch.inference_mode():
            embeddings = self.model(batch).float().cpu().numpy()  # (B, D)
        responses = []
        start = 0
        for size in sizes:
            out = pb_utils.Tensor("embedding", embeddings[start : start + size])
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            start += size
        return responses
