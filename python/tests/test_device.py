"""The writer's device readings with torch.cuda and NVML stubbed (this machine has no GPU): what
the stubs return lands in the rank header; without torch, without CUDA or without NVML the
words stay 0 (unknown)."""

import struct
import types
import unittest

import support
from tptop_telemetry import Job
from tptop_telemetry import layout as L
from tptop_telemetry import writer as W
from tptop_telemetry.device import DeviceProbe

GiB = 1 << 30


def fake_torch(available=True, allocated=3 * GiB, reserved=4 * GiB, peak=5 * GiB):
    cuda = types.SimpleNamespace(
        is_available=lambda: available, current_device=lambda: 1,
        memory_allocated=lambda d: allocated if d == 1 else -1,
        memory_reserved=lambda d: reserved if d == 1 else -1,
        max_memory_allocated=lambda d: peak if d == 1 else -1)
    return types.SimpleNamespace(cuda=cuda)


def fake_nvml(gpu=73):
    util = types.SimpleNamespace(gpu=gpu)
    return types.SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: ("handle", i),
                                 nvmlDeviceGetUtilizationRates=lambda h: util if h == ("handle", 1) else None)


class DeviceProbeTests(unittest.TestCase):
    def test_readings_from_torch_cuda_and_nvml(self):
        self.assertEqual(DeviceProbe({"torch": fake_torch(), "pynvml": fake_nvml()}).read(),
                         (3 * GiB, 4 * GiB, 5 * GiB, 73.0))

    def test_no_torch_no_cuda_no_nvml(self):
        self.assertIsNone(DeviceProbe({}).read(), "torch not imported: nothing is read")
        self.assertIsNone(DeviceProbe({"torch": fake_torch(available=False)}).read())
        broken = types.SimpleNamespace(nvmlInit=lambda: (_ for _ in ()).throw(RuntimeError("no driver")))
        self.assertEqual(DeviceProbe({"torch": fake_torch(), "pynvml": broken}).read(), (3 * GiB, 4 * GiB, 5 * GiB, None))


class WriterPublishesDevice(unittest.TestCase):
    def setUp(self):
        self.job = support.job_name("device")
        self.addCleanup(support.remove, self.job)

    def header(self, rank, off, fmt):
        with open("/dev/shm/tptop." + self.job, "rb") as f:
            data = f.read()
        from tptop_telemetry.layout import Geometry
        g = Geometry(1, 1, 0, L.DEFAULT_SLOT_COUNT)
        return struct.unpack_from("<" + fmt, data, g.rank_header_offset(rank) + off)[0]

    def test_step_writes_the_device_words(self):
        job = Job.create(self.job, total_steps=5)
        w = job.rank_writer(0)
        w._device = DeviceProbe({"torch": fake_torch(), "pynvml": fake_nvml(41)})
        w.step(step=1, loss=2.0)
        R = L.RankHeader
        self.assertEqual(self.header(0, R.DEVICE_MEMORY_ALLOCATED, "Q"), 3 * GiB)
        self.assertEqual(self.header(0, R.DEVICE_MEMORY_RESERVED, "Q"), 4 * GiB)
        self.assertEqual(self.header(0, R.DEVICE_MEMORY_PEAK, "Q"), 5 * GiB)
        self.assertEqual(self.header(0, R.DEVICE_UTILIZATION, "I"), 42, "percent + 1")
        w.finish()
        job.close()

    def test_cpu_job_leaves_them_zero(self):
        job = Job.create(self.job, total_steps=5)
        w = job.rank_writer(0)
        w._device = DeviceProbe({})
        w.step(step=1, loss=2.0)
        for off, fmt in ((L.RankHeader.DEVICE_MEMORY_ALLOCATED, "Q"), (L.RankHeader.DEVICE_UTILIZATION, "I")):
            self.assertEqual(self.header(0, off, fmt), 0)
        w.finish()
        job.close()


if __name__ == "__main__":
    unittest.main()
