#!/usr/bin/env bash
# A storm of HTTP clients on `tptop serve` while a job trains: 100 concurrent scrapers (each a
# scrape every 0.2 s for 6 s), 5 clients that ask and never read, and one that sends half a
# request and waits. The job's median step time during the storm must stay within noise of the
# median before it (≤ 1.5×, the CPU the clients themselves take on a 2-core machine included),
# the server must still answer, and it must have read every record (none lost, the last step).
source "$(dirname "$0")/lib.sh"
"$tptop" serve --listen 127.0.0.1:0 --job "$job" > "$work/serve.out" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; cleanup' EXIT
wait_until 20 grep -q "http://127.0.0.1:" "$work/serve.out" || fail "tptop serve did not start: $(cat "$work/serve.out")"
port=$(sed -n 's/.*http:\/\/127\.0\.0\.1:\([0-9]*\)\/metrics.*/\1/p' "$work/serve.out")
mpirun -np 2 "$tptrain" "${train_args[@]}" --steps 100000 --job "$job" --log "$work/steps.jsonl" \
  --checkpoint-dir "$work/ck" > "$work/out" 2>&1 &
wait_until 60 step_at_least "$job" 30 || fail "the job did not reach step 30: $(tail -3 "$work/out")"
sleep 4
before=$(job_step "$job")
python3 - "$port" > "$work/storm" 2>&1 <<'PY' || fail "storm client: $(tail -3 "$work/storm")"
import socket, sys, threading, time
port = int(sys.argv[1])
ok = bad = 0
lock = threading.Lock()
def scrape():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536): data += chunk
    s.close()
    return data.startswith(b"HTTP/1.1 200") and b"tptop_step{" in data
def client(end):
    global ok, bad
    while time.time() < end:
        try: good = scrape()
        except OSError: good = False
        with lock:
            if good: ok += 1
            else: bad += 1
        time.sleep(0.2)
idle = []
for _ in range(5):  # ask and never read
    s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 50); idle.append(s)
half = socket.create_connection(("127.0.0.1", port)); half.sendall(b"GET /metr")
end = time.time() + 6
threads = [threading.Thread(target=client, args=(end,)) for _ in range(100)]
for t in threads: t.start()
for t in threads: t.join()
t0 = time.time(); health = scrape_ok = False
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); health = s.recv(100).startswith(b"HTTP/1.1 200")
print(ok, bad, int(health), round((time.time() - t0) * 1000))
PY
after=$(job_step "$job")
read -r ok bad health health_ms < "$work/storm"
sleep 3
"$tptop" stop "$job" --timeout 30 > /dev/null || fail "the job did not stop"
wait_until 30 bash -c "! pgrep -f -- '--job $job( |$)' > /dev/null" || true
[ "$health" = 1 ] || fail "/healthz did not answer after the storm"
[ "$bad" -eq 0 ] || fail "$bad of $((ok + bad)) scrapes failed during the storm"
kill -0 $serve_pid 2>/dev/null || fail "tptop serve died"
sleep 1.5  # the server's next collection reads the last records
read -r lost_server served_step <<< "$(python3 - "$port" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
lost = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("tptop_records_lost_total{"))
step = min(float(l.split()[-1]) for l in text.splitlines() if l.startswith("tptop_step{"))
print(int(lost), int(step))
PY
)"
last=$(tail -1 "$work/steps.jsonl" | python3 -c 'import json, sys; print(json.load(sys.stdin)["step"])')
read -r base storm <<< "$(python3 - "$work/steps.jsonl" "$before" "$after" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
b, a = int(sys.argv[2]), int(sys.argv[3])
med = lambda rs: statistics.median(r["step_ms"] for r in rs)
print(f'{med([r for r in rows if 10 < r["step"] <= b]):.2f} {med([r for r in rows if b < r["step"] <= a]):.2f}')
PY
)"
python3 -c "import sys; sys.exit(0 if float('$storm') <= 1.5 * float('$base') else 1)" \
  || fail "median step ${storm} ms during the storm vs ${base} ms before it"
[ "$lost_server" -eq 0 ] || fail "$lost_server records lost to the server"
[ "$served_step" -eq "$last" ] || fail "the server shows step $served_step, the job's last step is $last"
report "100 concurrent scrapers for 6 s ($ok scrapes), 5 clients that never read, 1 half request" \
  "/healthz answered in ${health_ms} ms after it; every scrape 200" \
  "median step ${base} ms before, ${storm} ms during (steps $before–$after)" "0 records (the server read all $last steps of both ranks)"
