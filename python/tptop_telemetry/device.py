"""The accelerator's memory and utilisation for the rank header (docs/TELEMETRY.md, "Device").

When the process has imported torch and CUDA is available, ``DeviceProbe.read()`` returns
torch.cuda's allocated, reserved and peak allocated bytes of the current device and, where
``pynvml`` is importable, NVML's GPU utilisation in percent. Nothing is imported here: torch
only when the caller already has it (``sys.modules``), pynvml on the first read. Every call
that can fail is caught; a machine without a GPU reads None.
"""

import sys

#: (allocated, reserved, peak) bytes and utilisation percent (None: unknown).
DeviceReading = tuple


class DeviceProbe:
    def __init__(self, modules=None):
        self._modules = sys.modules if modules is None else modules
        self._nvml = None
        self._nvml_handle = None
        self._nvml_tried = False

    def _torch_cuda(self):
        torch = self._modules.get("torch")
        if torch is None:
            return None
        try:
            cuda = torch.cuda
            return cuda if cuda.is_available() else None
        except Exception:
            return None

    def _utilisation(self, device):
        if not self._nvml_tried:
            self._nvml_tried = True
            try:
                nvml = self._modules.get("pynvml")
                if nvml is None:
                    import pynvml as nvml  # noqa: PLC0415 (optional, only where installed)
                nvml.nvmlInit()
                self._nvml = nvml
                self._nvml_handle = nvml.nvmlDeviceGetHandleByIndex(device)
            except Exception:
                self._nvml = None
        if self._nvml is None:
            return None
        try:
            return float(self._nvml.nvmlDeviceGetUtilizationRates(self._nvml_handle).gpu)
        except Exception:
            return None

    def read(self):
        """(allocated, reserved, peak, utilisation %) of the current CUDA device, or None."""
        cuda = self._torch_cuda()
        if cuda is None:
            return None
        try:
            device = cuda.current_device()
            reading = (int(cuda.memory_allocated(device)), int(cuda.memory_reserved(device)),
                       int(cuda.max_memory_allocated(device)))
        except Exception:
            return None
        return reading + (self._utilisation(device),)
