"""A small reader of the segment (the Swift ``JobReader.poll`` protocol), for tests and
scripts: ``Reader(job).poll(rank)`` returns the records published since the previous poll with
exact lost and corrupt counts."""

from . import layout as L
from .layout import RankHeader as R, Slot
from .records import decode
from .segment import get_text, open_mapping, validate


class Reader:
    """Attaches read-only to a job's segment (refusing it as the Swift reader does)."""

    def __init__(self, job):
        self._m = open_mapping(job, writable=False)
        try:
            self.geometry, self.info = validate(self._m, job, check_owner=True)
        except BaseException:
            self._m.close()
            raise
        self._cursor = [0] * self.geometry.world_size

    def close(self):
        self._m.close()

    def rank_status(self, rank):
        """One rank's header as a dict."""
        h, m = self.geometry.rank_header_offset(rank), self._m
        state = m.u64(h + R.STATE)
        acked = m.u64(h + R.ACKED_DESIRED_STATE)
        return dict(
            write_index=m.u64(h + R.WRITE_INDEX), heartbeat_ns=m.u64(h + R.HEARTBEAT_NS),
            state=L.RANK_STATES[state] if state < len(L.RANK_STATES) else None,
            last_step=m.u64(h + R.LAST_STEP),
            acked_state=L.DESIRED_STATES[acked] if acked < len(L.DESIRED_STATES) else None,
            acked_step=m.u64(h + R.ACKED_STEP), checkpoints_saved=m.u64(h + R.CHECKPOINTS_SAVED),
            last_checkpoint_step=m.u64(h + R.LAST_CHECKPOINT_STEP), pid=m.u32(h + R.PID),
            world_rank=m.u32(h + R.WORLD_RANK), local_rank=m.u32(h + R.LOCAL_RANK),
            attached=m.u32(h + R.ATTACHED) == R.ATTACHED_VALUE,
            host=get_text(m.mm, h + R.HOST, R.HOST_CAPACITY))

    def seek_to_start(self):
        self._cursor = [0] * self.geometry.world_size

    def poll(self, rank):
        """(records, lost, corrupt) since the previous poll of ``rank``; each record is a dict
        of ``records.decode`` plus its ring ``index``. accepted + lost + corrupt equals the
        records published since the previous poll."""
        g, m = self.geometry, self._m
        head = m.u64(g.rank_header_offset(rank) + R.WRITE_INDEX)
        i = self._cursor[rank]
        lost = corrupt = 0
        if head - i > g.slot_count:
            lost += head - g.slot_count - i
            i = head - g.slot_count
        out = []
        ring = g.ring_offset(rank)
        while i < head:
            slot = ring + (i & (g.slot_count - 1)) * Slot.SIZE
            if m.u64(slot) != 2 * i + 2:
                lost += 1
            else:
                payload = bytes(m.mm[slot + Slot.PAYLOAD:slot + Slot.SIZE])
                if m.u64(slot) != 2 * i + 2:
                    lost += 1
                else:
                    r = decode(payload)
                    if r is None:
                        corrupt += 1
                    else:
                        r["index"] = i
                        out.append(r)
            i += 1
        self._cursor[rank] = i
        return out, lost, corrupt
