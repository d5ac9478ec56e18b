"""The decode benchmark's table (bench/run_gpu.sh stages decode, decode_llama):
per case, tessera generate's decode tokens/s (gen::Stats, --stats-json) next to
transformers' generate (eager, dynamic cache) and static cache + torch.compile
(bench/decode_peers.py), their ratios, ms per decode step and the weight-
bandwidth limit of one step (decode weight bytes / measured copy bandwidth).

  python3 bench/summarize_decode.py combine RAW_DIR OUT.json
      one JSON from RAW_DIR's CASE.tessera.json / CASE.peers.json / CASE.tessera.log
  python3 bench/summarize_decode.py DIR
      the markdown table from DIR/decode*.json (and DIR/peak.json, when there)
"""
import json
import sys
from pathlib import Path

PARTS = {".tessera.json": "tessera", ".peers.json": "peers"}
GOALS = {"eager": 10.0, "static_compile": 2.0}  # the targets for GPT-2, × tokens/s


def combine(raw, out):
    """Group RAW_DIR/<case>.<part>.json by case; a missing or unreadable part is recorded as an error."""
    cases = {}
    for f in sorted(Path(raw).iterdir()):
        for suffix, part in PARTS.items():
            if f.name.endswith(suffix):
                case = f.name[: -len(suffix)]
                try:
                    cases.setdefault(case, {})[part] = json.loads(f.read_text())
                except ValueError as e:
                    cases.setdefault(case, {})[part] = {"error": f"{f.name}: {e}"}
        if f.name.endswith(".tessera.log"):  # the tail of a failed run, kept next to its figures
            cases.setdefault(f.name[: -len(".tessera.log")], {})["tessera_log"] = f.read_text()[-4000:]
    for c in cases.values():
        for part in PARTS.values():
            c.setdefault(part, {"error": "no output (the run failed or timed out)"})
    Path(out).write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    return cases


def fmt(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def tessera_figures(t):
    """decode tokens/s, end-to-end tokens/s (prefill + decode, host sampling excluded), ms per decode step."""
    if "error" in t or not t.get("decode_ms"):
        return None, None, None
    e2e = t["generated_tokens"] / ((t["prefill_ms"] + t["decode_ms"]) / 1000)
    return t["decode_tokens_per_s"], e2e, t["decode_ms"] / max(t["decode_steps"], 1)


def rows(cases, copy_gbps):
    out, goals = [], []
    for name, c in sorted(cases.items()):
        t_dec, t_e2e, t_ms = tessera_figures(c["tessera"])
        peers = c["peers"]
        modes = peers.get("modes", {})
        dec = {m: modes.get(m, {}).get("decode_tokens_per_s") for m in GOALS}
        e2e = {m: modes.get(m, {}).get("tokens_per_s") for m in GOALS}
        wb = peers.get("decode_weight_bytes")
        limit_ms = wb / (copy_gbps * 1e9) * 1000 if wb and copy_gbps else None
        best_ms = min([x for x in [t_ms] + [modes.get(m, {}).get("decode_ms_per_step") for m in GOALS] if x], default=None)
        out.append([name, fmt(t_dec), fmt(dec["eager"]), fmt(dec["static_compile"]),
                    fmt(ratio(t_dec, dec["eager"]), 2), fmt(ratio(t_dec, dec["static_compile"]), 2),
                    fmt(t_e2e), fmt(ratio(t_e2e, e2e["eager"]), 2), fmt(ratio(t_e2e, e2e["static_compile"]), 2),
                    fmt(t_ms, 3), fmt(modes.get("static_compile", {}).get("decode_ms_per_step"), 3),
                    fmt(limit_ms, 3), fmt(ratio(limit_ms, best_ms), 2)])
        if name.startswith("gpt2"):
            for m, goal in GOALS.items():
                r = ratio(t_dec, dec[m])
                goals.append(f"- {name} vs {m}: {fmt(r, 2)}× decode tokens/s (goal ≥ {goal:g}×): "
                             + ("met" if r is not None and r >= goal else "not met" if r is not None else "no figure"))
        for part in ("tessera", "peers"):
            if "error" in c[part]:
                goals.append(f"- {name} {part}: {c[part]['error'][:300]}")
        log = [ln for ln in c.get("tessera_log", "").splitlines() if ln.strip()]
        if log:
            goals.append(f"- {name} tessera log: {log[-1][:300]}")
        for m, r in modes.items():
            if "error" in r:
                goals.append(f"- {name} {m}: {r['error'][:300]}")
    return out, goals


def summarize(d):
    d = Path(d)
    cases = {}
    for f in sorted(d.glob("decode*.json")):
        cases.update(json.loads(f.read_text()).get("cases", {}))
    peak = json.loads((d / "peak.json").read_text()) if (d / "peak.json").exists() else {}
    copy = peak.get("copy_GBps")
    table, notes = rows(cases, copy)
    head = ["case", "tessera decode tok/s", "generate (eager) tok/s", "static+compile tok/s", "× eager", "× static+compile",
            "tessera e2e tok/s", "e2e × eager", "e2e × static+compile", "tessera ms/step", "static+compile ms/step",
            "weight-bandwidth limit ms/step", "limit / best"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    info = next((c["peers"] for c in cases.values() if "torch" in c["peers"]), {})
    lines += ["", f"GPU {info.get('gpu') or info.get('device', '?')}, torch {info.get('torch', '?')}, "
                  f"transformers {info.get('transformers', '?')}; copy bandwidth "
                  + (f"{copy:,.0f} GB/s (bench/measure_peak.py, read + write)" if copy else "not measured (no peak.json)") + ".",
              "decode tok/s: batch × (new tokens − 1) / decode time (the first token comes from the prefill); "
              "transformers: median generate(N) − generate(1) wall time; tessera: gen::Stats decode_ms (engine runs and "
              "logits read, host sampling not counted). e2e: batch × N over prefill + decode. ms/step: one decode step of "
              "the whole batch. Weight-bandwidth limit: the parameter bytes one step reads (all but the embedding "
              "tables) / copy bandwidth; limit / best: the fraction of that limit the fastest of the three reaches."]
    if notes:
        lines += [""] + notes
    return "\n".join(lines)


def main(argv):
    if len(argv) == 3 and argv[0] == "combine":
        combine(argv[1], argv[2])
        return 0
    if len(argv) == 1:
        print(summarize(argv[0]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
