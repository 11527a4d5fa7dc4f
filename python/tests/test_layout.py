"""The layout constants exist once per language: these tests hold the Python copy
(tptop_telemetry/layout.py) to the Swift declaration (Sources/Telemetry/Layout.swift)."""

import os
import re
import unittest

import support  # noqa: F401
from support import REPO
from tptop_telemetry import layout as L


def source(*path, module="Telemetry"):
    with open(os.path.join(REPO, "Sources", module, *path)) as f:
        return f.read()


def snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).upper()


def swift_constants():
    """{enum path: {NAME: value}} of every integer `static let` in Layout.swift."""
    text = source("Layout.swift")
    out, stack = {}, []
    for line in text.splitlines():
        m = re.match(r"\s*public enum (\w+)", line)
        if m:
            stack.append(m.group(1))
            continue
        m = re.match(r"\s*public static let (\w+)(?:: \w+)? = (0x[0-9A-Fa-f_]+|\d[\d_]*)\b", line)
        if m:
            out.setdefault(".".join(stack), {})[snake(m.group(1))] = int(m.group(2).replace("_", ""), 0)
        if re.match(r"\s*}\s*$", line) and stack and len(line) - len(line.lstrip()) == 2 * (len(stack) - 1):
            stack.pop()
    return out


class LayoutTests(unittest.TestCase):
    def setUp(self):
        self.swift = swift_constants()

    def check(self, enum, py, rename=None):
        consts = self.swift[enum]
        self.assertTrue(consts, enum)
        for name, value in consts.items():
            pyname = (rename or {}).get(name, name)
            self.assertTrue(hasattr(py, pyname), f"{enum}.{name} has no Python twin {pyname}")
            self.assertEqual(getattr(py, pyname), value, f"{enum}.{name}")

    def test_top_level_constants_match(self):
        self.check("SegmentLayout", L)

    def test_header_offsets_match(self):
        self.check("SegmentLayout.Header", L.Header)

    def test_shard_offsets_match(self):
        self.check("SegmentLayout.Shard", L.Shard)

    def test_control_offsets_match(self):
        self.check("SegmentLayout.Control", L.Control)

    def test_rank_header_offsets_match(self):
        self.check("SegmentLayout.RankHeader", L.RankHeader)

    def test_slot_offsets_match(self):
        self.check("SegmentLayout.Slot", L.Slot)
        kinds = self.swift["SegmentLayout.Slot.Kind"]
        self.assertEqual(kinds, {"STEP": L.Slot.KIND_STEP, "EVENT": L.Slot.KIND_EVENT,
                                 "TENSOR_STATS": L.Slot.KIND_TENSOR_STATS})

    def test_every_swift_enum_was_compared(self):
        self.assertEqual(set(self.swift), {
            "SegmentLayout", "SegmentLayout.Header", "SegmentLayout.Shard", "SegmentLayout.Control",
            "SegmentLayout.RankHeader", "SegmentLayout.Slot", "SegmentLayout.Slot.Kind"})

    def test_geometry_limits_match(self):
        text = source("Geometry.swift")
        for name, py in (("maxWorldSize", L.MAX_WORLD_SIZE), ("maxSlotCount", L.MAX_SLOT_COUNT),
                         ("minSlotCount", L.MIN_SLOT_COUNT), ("maxShardCount", L.MAX_SHARD_COUNT)):
            m = re.search(rf"static let {name} = ([^\n]+)", text)
            self.assertIsNotNone(m, name)
            self.assertEqual(eval(m.group(1).replace("_", "")), py, name)  # "1 << 20" and plain numbers

    def test_enumerations_match(self):
        states = source("States.swift", module="JobSchema")  # the job's vocabulary
        rank = re.search(r"enum RunState[^{]*\{\s*case ([^\n]+)", states).group(1)
        self.assertEqual([c.split("=")[0].strip() for c in rank.split(",")], list(L.RANK_STATES))
        desired = re.search(r"enum DesiredState[^{]*\{\s*case ([^\n]+)", states).group(1)
        self.assertEqual([c.split("=")[0].strip() for c in desired.split(",")], list(L.DESIRED_STATES))
        text = source("JobTypes.swift")
        events = re.search(r"enum EventKind[^{]*\{\s*case ([^\n]+)", text).group(1)
        values = [int(c.split("=")[1]) for c in events.split(",")]
        self.assertEqual(values, sorted(L.EVENT_KINDS.values()))

    def test_step_fields_do_not_overlap_and_fill_the_payload(self):
        S = L.Slot
        fields = [(S.KIND, 4), (S.EVENT_KIND, 4), (S.STEP, 8), (S.TIMESTAMP_NS, 8), (S.TOKENS, 8)]
        fields += [(o, 4) for o in (S.LOSS, S.LR, S.GRAD_NORM, S.COMPUTE_BUSY, S.GFLOPS, S.RANK)]
        fields += [(o, 8) for o in range(S.STEP_NS, S.HISTOGRAM, 8)]
        fields += [(S.HISTOGRAM + 4 * i, 4) for i in range(16)] + [(S.CHECKSUM, 8)]
        covered = sorted(fields)
        pos = S.PAYLOAD
        for off, size in covered:
            self.assertEqual(off, pos, "gap or overlap")
            self.assertEqual(off % size, 0, "misaligned")
            pos = off + size
        self.assertEqual(pos, S.SIZE)

    def test_areas_are_page_aligned(self):
        for world, tp, shards, slots in ((1, 1, 0, 16), (2, 2, 16, 4096), (8, 4, 33, 64)):
            g = L.Geometry(world, tp, shards, slots)
            for off in (g.job_description_offset, g.control_offset, g.rank_headers_offset, g.rings_offset,
                        g.total_size):
                self.assertEqual(off % L.PAGE_SIZE, 0)


if __name__ == "__main__":
    unittest.main()
