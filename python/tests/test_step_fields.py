"""The step field table exists once, in Swift (Sources/JobSchema/StepFields.swift); the Python
writer's record layout (tptop_telemetry/records.py) and store columns (tptop_telemetry/store.py)
name the same fields. `tptop-dev step-fields` prints the table; these tests hold the Python lists
to it, so a field added on one side only fails here."""

import json
import subprocess
import unittest

import support  # noqa: F401
from support import binary
from tptop_telemetry import records, store


def swift_table():
    out = subprocess.run([binary("tptop-dev"), "step-fields"], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class StepFieldTable(unittest.TestCase):
    def setUp(self):
        self.table = swift_table()
        self.recorded = [f for f in self.table if f["recorded"]]

    def test_the_record_layout_names_every_recorded_field(self):
        python = set(records.STEP_FIELDS) - {"histogram"}
        swift = {f["column"] for f in self.recorded}
        self.assertEqual(python, swift, "records.STEP_FIELDS and the Swift table differ")

    def test_store_columns_follow_the_table_in_order(self):
        self.assertEqual(list(store.STEP_COLUMNS), [f["column"] for f in self.recorded])

    def test_encode_step_takes_every_recorded_field(self):
        # every recorded field is a keyword of the record encoder, under its column name
        import inspect
        params = set(inspect.signature(records.encode_step).parameters)
        for f in self.recorded:
            self.assertIn(f["column"], params, f["name"])

    def test_older_names_are_kept_beside_new_ones(self):
        count = next(f for f in self.table if f["name"] == "collective_count")
        self.assertEqual(count["aliases"], ["allreduce_count"])
        self.assertEqual(count["column"], "allreduce_count")


if __name__ == "__main__":
    unittest.main()
